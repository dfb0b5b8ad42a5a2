"""Images to GAP vectors as a scikit-learn transformer: :class:`GapFeaturizer`.

The transformer is a thin shell over :func:`gapsvm.network.extraction.extract`; it holds the
featurizer parameters (:data:`FEATURIZER_PARAMS`, shared with ``GapClassifier`` and the Dask
path), checks them in one place (:func:`check_featurizer_params`) and describes what it
computes (:func:`features_metadata`).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from gapsvm._version import __version__
from gapsvm.core.cache import PREPROCESS_VERSION, FeatureCache, resolve_cache_dir
from gapsvm.core.sizes import format_size
from gapsvm.core.validation import check_input_size
from gapsvm.network.backbone.build import Backbone, get_backbone
from gapsvm.network.backbone.registry import PRECISIONS, get_spec
from gapsvm.network.extraction import ON_ERROR, ExtractionResult, extract
from gapsvm.network.prepare import open_cache
from gapsvm.utils.checks import check_choice, check_int

__all__ = [
    "FEATURIZER_PARAMS",
    "GapFeaturizer",
    "check_featurizer_params",
    "features_metadata",
    "stack_if_same",
]


def check_featurizer_params(est: Any) -> None:
    """Validate the featurizer parameters shared by GapFeaturizer and GapClassifier."""
    get_spec(est.backbone)
    check_choice(est.precision, "precision", PRECISIONS)
    check_int(est.batch_size, "batch_size")
    check_input_size(est.input_size)


def features_metadata(backbone_metadata: dict[str, Any], input_size: Any) -> dict[str, Any]:
    """What produced a set of features, as every file gapsvm writes records it.

    Parameters
    ----------
    backbone_metadata : dict
        :meth:`Backbone.metadata <gapsvm.network.backbone.build.Backbone.metadata>`: backbone,
        layer, stride, weights identity and precision.
    input_size : tuple of int, float or None
        As returned by :func:`gapsvm.core.sizes.parse_input_size`.

    Returns
    -------
    dict
        ``backbone_metadata`` plus ``input_size`` (spelled as on the command line),
        ``preprocess_version`` and ``gapsvm_version``.
    """
    return {
        **backbone_metadata,
        "input_size": format_size(input_size),
        "preprocess_version": PREPROCESS_VERSION,
        "gapsvm_version": __version__,
    }


class GapFeaturizer(TransformerMixin, BaseEstimator):
    """Images to global-average-pooled features of a frozen Keras backbone.

    Each image is decoded, resized to ``input_size``, passed through the backbone cut at its
    feature layer (VGG16: ``block5_conv3``, stride 16) and averaged over space. Results are
    cached on disk by image content, backbone, weights, precision and the size of the input
    the network sees, so an unchanged image is never computed twice for the same input.

    The backbone is frozen and pretrained, so there is nothing to learn: ``transform`` works
    without ``fit``, as scikit-learn's ``Normalizer`` does. ``fit`` records the weights'
    identity, and a fitted featurizer refuses to transform with other weights. The network
    itself is built on the first image the cache does not hold: images the cache serves
    need neither the network nor TensorFlow.

    Parameters
    ----------
    backbone : str, default="vgg16"
        A key of :data:`gapsvm.network.backbone.BACKBONES`.
    weights : {"imagenet"}, path or None, default="imagenet"
        As in Keras. ``"imagenet"`` works offline after ``gapsvm weights install``.
    input_size : (height, width), float or None, default=(224, 224)
        ``(h, w)`` resizes every image; a float scales each image's own size; None keeps it.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"`` runs the convolutions under Keras' ``mixed_bfloat16`` policy: the fast
        choice on CPUs with bfloat16 instructions (Intel AMX, AVX512-BF16), with the
        accuracy and CAMs of float32 within the margins ``benchmarks/README.md`` reports.
        Its features are cached apart from float32's.
    batch_size : int, default=16
    cache_dir : path, "auto" or None, default="auto"
        ``"auto"`` is ``$GAPSVM_HOME/features``; None disables the cache.
    cache_maps : bool, default=True
        Also cache the spatial maps (float16), so class activation maps for these images
        never need the network again.
    verbose : int, default=1
        0 silent, 1 progress bar on terminals, 2 progress bar always.

    Attributes
    ----------
    weights_id_ : dict
        ``{"name": ..., "sha256": ...}`` of the weights seen at fit (set by ``fit`` only).
    n_features_out_ : int
        Channels of the feature layer (512 for VGG16).
    feature_layer_ : str
        The layer the features are taken from.

    Examples
    --------
    >>> from gapsvm import GapFeaturizer
    >>> X = GapFeaturizer(input_size=(128, 64)).fit_transform(["a.png", "b.jpg"])  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (2, 512)
    """

    def __init__(
        self,
        backbone: str = "vgg16",
        weights: str | os.PathLike | None = "imagenet",
        input_size: Any = (224, 224),
        precision: str = "float32",
        batch_size: int = 16,
        cache_dir: str | os.PathLike | None = "auto",
        cache_maps: bool = True,
        verbose: int = 1,
    ) -> None:
        self.backbone = backbone
        self.weights = weights
        self.input_size = input_size
        self.precision = precision
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.cache_maps = cache_maps
        self.verbose = verbose

    def _backbone(self) -> Backbone:
        return get_backbone(self.backbone, self.weights, self.precision)

    def _cache(self, bb: Backbone) -> FeatureCache | None:
        return open_cache(resolve_cache_dir(self.cache_dir), bb)

    def fit(self, X: Any = None, y: Any = None) -> GapFeaturizer:
        """Identify the backbone's weights and record their identity.

        The network is not built when the weights' identity is on record
        (:func:`~gapsvm.network.backbone.weights.recorded_identity`); it is built when
        ``transform`` first meets an image the cache does not hold.

        Parameters
        ----------
        X, y : ignored
            Present for API consistency; the backbone is frozen.

        Returns
        -------
        self : GapFeaturizer
        """
        check_featurizer_params(self)
        bb = self._backbone()
        self.weights_id_ = bb.identity.as_dict()
        self.n_features_out_ = bb.spec.channels
        self.feature_layer_ = bb.spec.layer
        return self

    def _checked_backbone(self) -> Backbone:
        # Nothing is learnt, so transform works unfitted; once fitted, the weights must still
        # be the ones fit saw (a file replaced in between would change every feature).
        check_featurizer_params(self)
        bb = self._backbone()
        fitted = getattr(self, "weights_id_", None)
        if fitted is not None and bb.identity.sha256 != fitted["sha256"]:
            raise ValueError(
                f"weights changed since fit: fitted with {fitted}, now "
                f"{bb.identity.as_dict()}; fit again"
            )
        return bb

    def extract(
        self,
        X: Any,
        *,
        maps: bool = False,
        on_error: str = "raise",
        input_size: Any = "fit",
        map_fn: Callable[[int, np.ndarray], Any] | None = None,
    ) -> ExtractionResult:
        """Compute (or fetch from the cache) features for ``X``, keeping per-image details.

        Parameters
        ----------
        X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)
        maps : bool, default=False
            Also return the feature maps.
        on_error : {"raise", "skip"}, default="raise"
            ``"skip"`` records unreadable images in ``result.errors`` and goes on; ``"raise"``
            computes and caches every readable image first, then raises.
        input_size : default="fit"
            Override ``self.input_size`` for this call (see
            :func:`gapsvm.core.sizes.parse_input_size`).
        map_fn : callable, optional
            With ``maps=True``: ``map_fn(index, maps)`` is kept in ``result.maps`` instead of
            the maps themselves, computed as each image arrives; reduce maps this way (to
            CAMs, say) and memory stays flat however many images there are.

        Returns
        -------
        ExtractionResult
        """
        check_choice(on_error, "on_error", ON_ERROR)
        bb = self._checked_backbone()
        size = check_input_size(self.input_size if input_size == "fit" else input_size)
        return extract(
            X, backbone=bb, input_size=size, cache=self._cache(bb),
            batch_size=self.batch_size, want_maps=maps, cache_maps=self.cache_maps,
            verbose=self.verbose, on_error=on_error, map_fn=map_fn,
        )

    def transform(self, X: Any) -> np.ndarray:
        """GAP vectors of ``X``.

        Parameters
        ----------
        X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)
            Image files or uint8 RGB images.

        Returns
        -------
        ndarray of shape (n_images, n_features_out_), float32

        Raises
        ------
        ImageReadError
            An image could not be read (after every readable one was computed and cached).
        """
        return self.extract(X).gap

    def transform_maps(self, X: Any) -> np.ndarray | list[np.ndarray]:
        """Feature-layer maps of ``X`` (block5_conv3 for VGG16).

        Returns
        -------
        ndarray of shape (n, h', w', channels) or list of ndarray
            One array when every image gives the same map size (fixed ``input_size``), else a
            list. Maps served from the cache are float16 (memory-mapped), fresh ones float32.
        """
        res = self.extract(X, maps=True)
        return stack_if_same(res.maps)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names ``gap0`` ... ``gap{n-1}`` of the output columns (fitted or not)."""
        n = getattr(self, "n_features_out_", None) or get_spec(self.backbone).channels
        return np.asarray([f"gap{i}" for i in range(n)], dtype=object)

    def metadata(self, input_size: Any = "fit") -> dict[str, Any]:
        """What produced these features: backbone, layer, weights identity, precision, input
        size, preprocessing and gapsvm versions (written into every file gapsvm makes)."""
        bb = self._checked_backbone()
        size = check_input_size(self.input_size if input_size == "fit" else input_size)
        return features_metadata(bb.metadata(), size)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        # A frozen, pretrained backbone: like Normalizer or FunctionTransformer, transform
        # needs no fit (fit only records the weights' identity, then checked at transform).
        tags.requires_fit = False
        return tags


#: The featurizer parameters, in constructor order: GapClassifier holds the same ones, and
#: the Dask path ships them to its workers.
FEATURIZER_PARAMS: tuple[str, ...] = tuple(
    inspect.signature(GapFeaturizer.__init__).parameters
)[1:]


def stack_if_same(arrays: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One float32 array when every array has the same shape, else a list of float32 arrays."""
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return np.stack([np.asarray(a, dtype=np.float32) for a in arrays])
    return [np.asarray(a, dtype=np.float32) for a in arrays]
