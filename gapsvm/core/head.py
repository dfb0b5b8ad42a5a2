"""The per-class weight layer: any linear scikit-learn classifier on GAP vectors.

:func:`effective_linear` reduces a fitted head to one weight matrix and intercept, folding the
affine steps of a :class:`~sklearn.pipeline.Pipeline` (scalers, PCA) into the final linear
model, and checks numerically that ``decision_function`` really is that affine map.
:class:`GapHead` is the estimator on a 2-D feature matrix that :class:`gapsvm.GapClassifier`
wraps; on its own it trains on precomputed features (``gapsvm train``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "GapHead",
    "NotLinearError",
    "classifier_or_default",
    "effective_linear",
    "materialize_default_classifier",
]


class NotLinearError(ValueError):
    """The head's decision function is not an affine function of the GAP vector.

    A class activation map spreads a class score over the image; that is exact only when the
    score is ``W . mean_xy f(x, y) + b``, i.e. linear in the GAP features.
    """


def _dense(a: Any) -> np.ndarray:
    return np.asarray(a.toarray() if hasattr(a, "toarray") else a, dtype=np.float64)


def _affine_step(step: Any, name: str, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, c) with ``step.transform(x) == x @ M + c`` for an affine transformer."""
    from sklearn.decomposition import PCA, TruncatedSVD
    from sklearn.preprocessing import (
        FunctionTransformer,
        MaxAbsScaler,
        MinMaxScaler,
        StandardScaler,
    )

    if step is None or step == "passthrough":
        return np.eye(d), np.zeros(d)
    if isinstance(step, StandardScaler):
        mean = np.zeros(d) if step.mean_ is None else step.mean_
        scale = np.ones(d) if step.scale_ is None else step.scale_
        mean = mean if step.with_mean else np.zeros(d)
        return np.diag(1.0 / scale), -mean / scale
    if isinstance(step, MinMaxScaler):
        if step.clip:
            raise NotLinearError(f"pipeline step {name!r} is MinMaxScaler(clip=True): not affine")
        return np.diag(step.scale_), np.asarray(step.min_, dtype=np.float64)
    if isinstance(step, MaxAbsScaler):
        return np.diag(1.0 / step.scale_), np.zeros(d)
    if isinstance(step, PCA):
        M = step.components_.T.astype(np.float64)
        c = -step.mean_ @ M
        if step.whiten:
            s = np.sqrt(step.explained_variance_)
            M, c = M / s, c / s
        return M, c
    if isinstance(step, TruncatedSVD):
        M = step.components_.T.astype(np.float64)
        return M, np.zeros(M.shape[1])
    if isinstance(step, FunctionTransformer) and step.func is None:
        return np.eye(d), np.zeros(d)
    raise NotLinearError(
        f"pipeline step {name!r} ({type(step).__name__}) is not a known affine transform; a CAM "
        "needs every step before the classifier to be affine (StandardScaler, MinMaxScaler, "
        "MaxAbsScaler, PCA, TruncatedSVD)"
    )


def effective_linear(
    estimator: Any, X_check: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The weight matrix and intercept that a fitted linear head applies to GAP vectors.

    Parameters
    ----------
    estimator : fitted classifier or Pipeline
        A model with ``coef_`` and ``intercept_`` (LinearSVC, LogisticRegression,
        SGDClassifier, RidgeClassifier, Perceptron, LinearDiscriminantAnalysis, ...), or a
        Pipeline of affine steps ending in one.
    X_check : ndarray of shape (n, n_features), optional
        Points on which ``decision_function`` must equal ``X_check @ coef.T + intercept``.

    Returns
    -------
    coef : ndarray of shape (n_rows, n_features), float64
        One row for binary heads, one per class otherwise.
    intercept : ndarray of shape (n_rows,), float64

    Raises
    ------
    NotLinearError
        The head has no linear decision function, with the reason.
    """
    steps = estimator.steps if isinstance(estimator, Pipeline) else [("classifier", estimator)]
    final = steps[-1][1]
    if not (hasattr(final, "coef_") and hasattr(final, "intercept_")):
        raise NotLinearError(
            f"the classifier {type(final).__name__} has no coef_/intercept_, so its decision "
            "is not a linear function of the GAP features and a class activation map cannot "
            "be drawn from it; use a linear head (LinearSVC, LogisticRegression, ...)"
        )
    d_in = getattr(estimator, "n_features_in_", None)
    if d_in is None:
        d_in = _dense(final.coef_).shape[-1]
    M, c = np.eye(d_in), np.zeros(d_in)
    for name, step in steps[:-1]:
        Ms, cs = _affine_step(step, name, M.shape[1])
        M, c = M @ Ms, c @ Ms + cs
    coef = np.atleast_2d(_dense(final.coef_))
    intercept = np.broadcast_to(np.asarray(final.intercept_, dtype=np.float64), (coef.shape[0],))
    W = coef @ M.T
    b = coef @ c + intercept
    if X_check is not None:
        if not hasattr(estimator, "decision_function"):
            raise NotLinearError(f"{type(estimator).__name__} has no decision_function")
        got = np.asarray(estimator.decision_function(X_check), dtype=np.float64)
        want = np.asarray(X_check, dtype=np.float64) @ W.T + b
        want = want.ravel() if got.ndim == 1 else want
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-5 * scale):
            raise NotLinearError(
                f"{type(estimator).__name__}.decision_function is not coef_ x + intercept_ on "
                "the training features (a one-vs-one or otherwise non-linear decision), so a "
                "class activation map would not add up to its scores"
            )
    return W, np.asarray(b, dtype=np.float64)


def _head_has(attr: str):
    def check(self: GapHead) -> bool:
        if hasattr(self, "classifier_"):
            return hasattr(self.classifier_, attr)
        return hasattr(classifier_or_default(self.classifier), attr)

    return check


class GapHead(ClassifierMixin, BaseEstimator):
    """A linear classifier on GAP vectors that knows its per-class CAM weights.

    Parameters
    ----------
    classifier : estimator, default=None
        Any scikit-learn classifier or Pipeline; None means ``LinearSVC()``. Its parameters
        are reachable as ``classifier__<name>``.

    Attributes
    ----------
    classifier_ : estimator
        The fitted clone of ``classifier``.
    classes_ : ndarray of shape (n_classes,)
        Class labels, as given to ``fit``.
    n_features_in_ : int
        Length of the feature vectors seen at fit.
    cam_coef_ : ndarray of shape (n_classes, n_features_in_) or None
        Effective weight row of every class (binary heads expanded to ``[-w, +w]``), with
        pipeline steps folded in; None when the head is not linear.
    cam_intercept_ : ndarray of shape (n_classes,) or None
        The matching intercepts.
    linear_error_ : str or None
        Why the head is not linear (then CAMs are unavailable), else None.
    """

    def __init__(self, classifier: Any = None) -> None:
        self.classifier = classifier

    def set_params(self, **params: Any) -> GapHead:
        """Set parameters; ``classifier__C=...`` works on the default ``LinearSVC()`` too."""
        materialize_default_classifier(self, params)
        return super().set_params(**params)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> GapHead:
        """Fit the classifier on GAP vectors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
            Passed on to the classifier when given.

        Returns
        -------
        self : GapHead
        """
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        kw = {} if sample_weight is None else {"sample_weight": sample_weight}
        self.classifier_ = clone(classifier_or_default(self.classifier)).fit(X, y, **kw)
        self.classes_ = self.classifier_.classes_
        self.cam_coef_ = self.cam_intercept_ = self.linear_error_ = None
        try:
            W, b = effective_linear(self.classifier_, X[:64])
            from gapsvm.core.cam import class_weights

            self.cam_coef_, self.cam_intercept_ = class_weights(W, b, len(self.classes_))
        except (NotLinearError, ValueError) as exc:
            self.linear_error_ = str(exc)
        return self

    def cam_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-class weights and intercepts for CAMs.

        Raises
        ------
        NotLinearError
            The head is not linear in the GAP features; the message says why.
        """
        check_is_fitted(self)
        if self.cam_coef_ is None:
            raise NotLinearError(self.linear_error_)
        return self.cam_coef_, self.cam_intercept_

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels."""
        check_is_fitted(self)
        return self.classifier_.predict(validate_data(self, X, reset=False))

    @available_if(_head_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        """The classifier's decision values (shape (n,) for binary heads)."""
        check_is_fitted(self)
        return self.classifier_.decision_function(validate_data(self, X, reset=False))

    @available_if(_head_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, where the classifier has them."""
        check_is_fitted(self)
        return self.classifier_.predict_proba(validate_data(self, X, reset=False))

    @available_if(_head_has("predict_log_proba"))
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities, where the classifier has them."""
        check_is_fitted(self)
        return self.classifier_.predict_log_proba(validate_data(self, X, reset=False))


def classifier_or_default(classifier: Any) -> Any:
    """The classifier a head fits: ``classifier`` itself, or a fresh ``LinearSVC()`` for None."""
    return LinearSVC() if classifier is None else classifier


def materialize_default_classifier(est: Any, params: dict[str, Any]) -> None:
    """Make ``est.classifier=None`` a real ``LinearSVC()`` before nested ``classifier__*`` params.

    Parameters
    ----------
    est : estimator
        An estimator with a ``classifier`` parameter (``GapHead``, ``GapClassifier``).
    params : dict
        The parameters about to be set; edited in place when it holds ``classifier=None``.
    """
    # `classifier=None` stands for LinearSVC(); nested `classifier__C` must reach a real
    # estimator, and a fresh one per call so no default instance is ever shared and mutated.
    if not any(k.startswith("classifier__") for k in params):
        return
    if "classifier" in params:
        if params["classifier"] is None:
            params["classifier"] = LinearSVC()
    elif est.classifier is None:
        est.classifier = LinearSVC()
