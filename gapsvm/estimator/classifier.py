"""GapClassifier: images in, a linear scikit-learn head on cached GAP features, exact CAMs out."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from gapsvm.core import validation as val
from gapsvm.core.cam import class_activation_map
from gapsvm.core.head import GapHead, classifier_or_default, materialize_default_classifier
from gapsvm.estimator.explanation import Explanation
from gapsvm.estimator.maps import MapsMixin
from gapsvm.estimator.targets import resolve_targets
from gapsvm.network.extraction import ExtractionResult
from gapsvm.network.featurizer import FEATURIZER_PARAMS, GapFeaturizer

__all__ = [
    "GapClassifier",
]


def _head_has(attr: str):
    def check(self: GapClassifier) -> bool:
        if hasattr(self, "head_"):
            return hasattr(self.head_, attr)
        return hasattr(classifier_or_default(self.classifier), attr)

    return check


class GapClassifier(MapsMixin, ClassifierMixin, BaseEstimator):
    """An image classifier whose decisions can be drawn as class activation maps.

    A frozen Keras backbone (VGG16 cut at ``block5_conv3``) turns each image into feature
    maps; their global average (GAP) feeds a linear scikit-learn ``classifier``. The head's
    weights applied to the maps give each class's activation map, whose spatial mean plus
    the intercept equals ``decision_function``. Features are cached on disk, so swapping or
    tuning the head (``GridSearchCV``) runs the network once per image.

    Parameters
    ----------
    classifier : estimator, default=None
        Any scikit-learn classifier, or a Pipeline ending in one; None means ``LinearSVC()``.
        Nested parameters route as ``classifier__C``. CAMs need a linear head (``coef_``,
        ``intercept_``) whose earlier pipeline steps are affine; other heads train and predict.
    backbone : str, default="vgg16"
    weights : {"imagenet"}, path or None, default="imagenet"
        As in Keras; ``"imagenet"`` works offline after ``gapsvm weights install``.
    input_size : (height, width), float or None, default=(224, 224)
        Network input size: fixed ``(h, w)``, a scale of each image's own size, or None (own
        size). Changing it on a fitted model with ``set_params`` takes effect without a refit:
        GAP features do not depend on the image size, so a head trained on small crops
        applies to whole photographs.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"`` (Keras' ``mixed_bfloat16``) is the fast choice on CPUs with bfloat16
        instructions; its speed, accuracy and CAM agreement with float32 are measured in
        ``benchmarks/README.md``.
    batch_size : int, default=16
    cache_dir : path, "auto" or None, default="auto"
        ``"auto"`` is ``$GAPSVM_HOME/features``; None disables the cache.
    cache_maps : bool, default=True
        Cache the feature maps too, so CAMs after a head swap need no network pass.
    verbose : int, default=1
        0 silent; 1 a progress bar on terminals during ``fit``, ``predict``, ``cam``..., as
        ``gapsvm features`` shows, once a pass lasts longer than
        :data:`gapsvm.utils.progress.TERMINAL_DELAY` (passes served from the cache print
        nothing); 2 a bar always.

    Attributes
    ----------
    head_ : GapHead
        The fitted head on GAP vectors (its ``classifier_`` is the fitted ``classifier``).
    classes_ : ndarray of shape (n_classes,)
        Class labels as given to ``fit`` (strings work).
    feature_meta_ : dict
        What produced the training features: backbone, layer, stride, weights identity
        (name and content hash), precision, input size, preprocessing and gapsvm versions.
    training_info_ : dict
        Set only by :func:`gapsvm.workflows.training.train_from_features` (``gapsvm
        train``): ``n_images``, ``features_file``, ``classifier`` (its repr),
        ``train_keys`` (the training images' content keys, by which ``gapsvm report``
        tells training images from new ones) with ``train_keys_preprocess_version`` and,
        when cross-validation ran,
        ``cv_folds``, ``cv_accuracy_mean``, ``cv_accuracy_std`` and ``cv_scores``.
    box_threshold_ : float
        Set only by calibration (``gapsvm evaluate --calibrate``): the box threshold that
        localised best on the calibration set; :meth:`boxes`, ``gapsvm cam --boxes`` and
        ``gapsvm evaluate`` use it by default.
    box_scales_ : tuple
        Set with ``box_threshold_``: the network inputs it was chosen at (scales of each
        photo, or fixed ``(h, w)``), the default inputs of :meth:`boxes` and ``evaluate``.
    box_calibration_ : str
        Set with ``box_threshold_``: where it was chosen, e.g. ``"calibrated on cal.csv
        (305 images)"``.

    See Also
    --------
    GapFeaturizer : the images-to-GAP-vectors transformer used inside.
    gapsvm.cam : the pure-numpy CAM math.

    Examples
    --------
    >>> from gapsvm import GapClassifier
    >>> clf = GapClassifier(input_size=(128, 64)).fit(paths, labels)  # doctest: +SKIP
    >>> clf.predict(new_paths)  # doctest: +SKIP
    >>> cams = clf.cam(new_paths, target="person")  # doctest: +SKIP
    """

    def __init__(
        self,
        classifier: Any = None,
        *,
        backbone: str = "vgg16",
        weights: str | os.PathLike | None = "imagenet",
        input_size: Any = (224, 224),
        precision: str = "float32",
        batch_size: int = 16,
        cache_dir: str | os.PathLike | None = "auto",
        cache_maps: bool = True,
        verbose: int = 1,
    ) -> None:
        self.classifier = classifier
        self.backbone = backbone
        self.weights = weights
        self.input_size = input_size
        self.precision = precision
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.cache_maps = cache_maps
        self.verbose = verbose

    def set_params(self, **params: Any) -> GapClassifier:
        """Set parameters; ``classifier__C=...`` works on the default ``LinearSVC()`` too."""
        materialize_default_classifier(self, params)
        return super().set_params(**params)

    # -- features ----------------------------------------------------------------------
    def featurizer(self) -> GapFeaturizer:
        """A fitted :class:`GapFeaturizer` with this model's current featurizer parameters."""
        return GapFeaturizer(**{p: getattr(self, p) for p in FEATURIZER_PARAMS}).fit()

    def extract(
        self,
        X: Any,
        *,
        maps: bool = False,
        input_size: Any = "fit",
        on_error: str = "raise",
        map_fn: Any = None,
    ) -> ExtractionResult:
        """GAP vectors (and maps) of ``X`` through the cache, checked against the fitted head.

        Parameters
        ----------
        X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)
        maps : bool, default=False
            Also return each image's feature maps.
        input_size : default="fit"
            Network input size for this call; ``"fit"`` is the model's own.
        on_error : {"raise", "skip"}, default="raise"
            ``"skip"`` records unreadable images in ``errors`` instead of raising.
        map_fn : callable, optional
            ``map_fn(index, maps)`` is kept instead of each image's maps as they arrive.

        Returns
        -------
        ExtractionResult

        Raises
        ------
        ValueError
            The backbone's weights or layer differ from those the head was trained on.
        """
        fz = self.featurizer()
        fitted = getattr(self, "feature_meta_", None)
        if fitted is not None and fz.weights_id_["sha256"] != fitted["weights"]["sha256"]:
            raise ValueError(
                f"this model's head was trained on features from weights {fitted['weights']}, "
                f"but weights={self.weights!r} gives {fz.weights_id_}; use the same weights"
            )
        if fitted is not None and fz.feature_layer_ != fitted["layer"]:
            raise ValueError(
                f"head trained on layer {fitted['layer']!r}, backbone gives {fz.feature_layer_!r}"
            )
        return fz.extract(X, maps=maps, on_error=on_error, input_size=input_size, map_fn=map_fn)

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> GapClassifier:
        """Compute (or fetch from the cache) GAP features of ``X`` and fit the head.

        Parameters
        ----------
        X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)
            Image files or uint8 RGB images.
        y : array-like of shape (n,)
            Class labels (any hashable: strings work).

        Returns
        -------
        self : GapClassifier

        Raises
        ------
        ImageReadError
            An image could not be read (every readable one is computed and cached first).
        ValueError
            Labels of the wrong length, or fewer than two classes.
        """
        sources, _ = val.check_images(X)
        y = val.check_labels(y, len(sources), min_classes=2)  # before the network runs
        fz = self.featurizer()
        res = fz.extract(sources)
        return self.fit_features(res.gap, y, fz.metadata())

    def fit_features(self, features: np.ndarray, y: Any, metadata: dict[str, Any]) -> GapClassifier:
        """Fit the head on precomputed GAP vectors (as ``gapsvm train`` does).

        Parameters
        ----------
        features : ndarray of shape (n, n_channels)
            GAP vectors from :class:`GapFeaturizer` or a ``gapsvm features`` file.
        y : array-like of shape (n,)
        metadata : dict
            The features' metadata (:meth:`GapFeaturizer.metadata`); its backbone must match
            this model's ``backbone``.

        Returns
        -------
        self : GapClassifier
        """
        features = np.asarray(features)
        y = val.check_labels(y, len(features), min_classes=2)
        val.check_features_match(metadata, self.backbone, self.weights, self.input_size)
        self.head_ = GapHead(self.classifier).fit(features, y)
        self.classes_ = self.head_.classes_
        self.feature_meta_ = dict(metadata)
        return self

    # -- prediction --------------------------------------------------------------------
    def transform_features(self, X: Any, input_size: Any = "fit") -> np.ndarray:
        """GAP vectors of ``X`` as this model sees them (checked against the fitted weights)."""
        check_is_fitted(self)
        return self.extract(X, input_size=input_size).gap

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class label of each image.

        Parameters
        ----------
        X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)

        Returns
        -------
        ndarray of shape (n,)
        """
        features = self.transform_features(X)  # checks fitted before head_ is touched
        return self.head_.predict(features)

    @available_if(_head_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values: shape (n,) for two classes (positive means ``classes_[1]``),
        else (n, n_classes)."""
        features = self.transform_features(X)  # checks fitted before head_ is touched
        return self.head_.decision_function(features)

    @available_if(_head_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (only where the head has ``predict_proba``)."""
        features = self.transform_features(X)  # checks fitted before head_ is touched
        return self.head_.predict_proba(features)

    # -- class activation maps ---------------------------------------------------------
    def class_scores(self, features: np.ndarray) -> np.ndarray:
        """Per-class scores ``W[c] . gap + b[c]`` of GAP vectors, shape (n, n_classes).

        For a binary head, column 1 is ``decision_function`` and column 0 its negative.
        """
        W, b = self.head_.cam_weights()
        return np.asarray(features, dtype=np.float64) @ W.T + b

    def explain(
        self,
        X: Any,
        target: Any = None,
        *,
        input_size: Any = "fit",
        on_error: str = "raise",
    ) -> Explanation:
        """Feature-resolution CAMs with everything needed to draw and judge them.

        Parameters
        ----------
        X : images
        target : None, label, sequence of labels or "all"
            None: each image's predicted class; a label: that class for all; a sequence of
            length n: one class per image; ``"all"``: every class's map of each image.
        input_size : default="fit"
            Network input size for this call (e.g. None for each image's own size).
        on_error : {"raise", "skip"}

        Returns
        -------
        Explanation
            The maps (None for unreadable images), the class each explains, predictions,
            every class's score, the intercepts, sizes and read errors.

        Notes
        -----
        Each image's feature maps are reduced to its CAMs as they arrive (every class's when
        ``target`` is None, since the prediction is known only afterwards, or "all"), so
        memory grows with ``n_classes x h' x w'`` per image, not with the 512-channel maps;
        the network runs once per image whatever the target.

        Raises
        ------
        NotLinearError
            The head is not linear in the GAP features.
        ValueError
            An unknown target class (the message lists the classes), a wrong-length list, or
            ``"all"`` for a model with a class named "all".
        """
        check_is_fitted(self)
        W, b = self.head_.cam_weights()
        X, _ = val.check_images(X)
        known = None
        if target is not None:  # an unknown class is reported before any image is computed
            known = resolve_targets(target, self.classes_, None, len(X))

        every = known is None or known.ndim == 2  # "all", or the prediction is not yet known

        def reduce(i: int, m: np.ndarray) -> Any:
            # The same per-class products as below would compute, done while `m` is at hand.
            if not every:
                return class_activation_map(m, W[known[i]])
            return [class_activation_map(m, w) for w in W]

        res = self.extract(X, maps=True, input_size=input_size, on_error=on_error,
                           map_fn=reduce)
        ok = res.ok
        scores = np.full((len(ok), len(self.classes_)), np.nan)
        predicted = np.empty(len(ok), dtype=self.classes_.dtype)
        if ok.any():
            gap = res.gap if ok.all() else res.gap[ok]  # one copy at most, for many images
            scores[ok] = self.class_scores(gap)
            predicted[ok] = self.head_.predict(gap)
        if known is None:
            tgt = np.full(len(ok), -1)
            tgt[ok] = resolve_targets(None, self.classes_, predicted[ok], int(ok.sum()))
            cams = [None if c is None else c[t] for c, t in zip(res.maps, tgt, strict=True)]
        elif every:
            tgt = np.where(ok[:, None], known, -1)
            cams = [None if c is None else np.stack(c) for c in res.maps]
        else:
            tgt, cams = np.where(ok, known, -1), res.maps
        return Explanation(
            cams=cams, classes=self.classes_, target=tgt, predicted=predicted, scores=scores,
            intercepts=b, image_hw=res.image_hw, input_hw=res.input_hw, errors=res.errors,
        )

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted model (``.skops``: safe to load; see :func:`gapsvm.load_model`)."""
        from gapsvm.estimator.persist import save_model

        save_model(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
