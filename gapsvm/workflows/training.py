"""Training a head on a features file: classifier resolution, cross-validation, the model.

``--classifier`` takes a short name (:data:`CLASSIFIERS`) or a dotted class name, skorch
style; nested ``--classifier__PARAM`` values are Python literals where they parse
(:func:`nested_params`). :func:`train_from_features` is what ``gapsvm train`` runs: it
cross-validates the head with scikit-learn's own :func:`~sklearn.model_selection.
cross_val_predict`, then fits it on every image and records the run in ``training_info_``.
"""

from __future__ import annotations

import ast
import importlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gapsvm.core.sizes import parse_input_size
from gapsvm.network.features_file import image_keys, read_features_file
from gapsvm.utils.checks import check_folds

if TYPE_CHECKING:
    from gapsvm.estimator.classifier import GapClassifier

# scikit-learn (and with it the head and the estimator) is imported where it is used, not
# here: importing it takes about a second, and `gapsvm train` shows what it read first.

__all__ = [
    "CLASSIFIERS",
    "check_folds",
    "cross_validate_head",
    "nested_params",
    "resolve_classifier",
    "train_from_features",
]


#: Short names ``--classifier`` takes, and the classes they stand for.
CLASSIFIERS = {
    "linearsvc": "sklearn.svm.LinearSVC",
    "logreg": "sklearn.linear_model.LogisticRegression",
    "sgd": "sklearn.linear_model.SGDClassifier",
    "ridge": "sklearn.linear_model.RidgeClassifier",
    "perceptron": "sklearn.linear_model.Perceptron",
    "lda": "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
}


# Settings that make the short names converge on GAP features of this size.
_CLASSIFIER_DEFAULTS = {"logreg": {"max_iter": 5000}, "linearsvc": {"max_iter": 10000}}


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def nested_params(tokens: Sequence[str], prefix: str = "classifier__") -> dict[str, Any]:
    """Parameters from ``--classifier__PARAM VALUE`` / ``--classifier__PARAM=VALUE`` tokens.

    Parameters
    ----------
    tokens : sequence of str
        Command-line tokens the parser did not know.
    prefix : str, default="classifier__"

    Returns
    -------
    dict
        ``PARAM -> value``, values parsed as Python literals where they parse (``"0.5"`` ->
        0.5, ``"None"`` -> None), else kept as text.

    Raises
    ------
    ValueError
        A token that is not ``--PREFIXPARAM``, or one without a value.
    """
    out: dict[str, Any] = {}
    it = iter(tokens)
    for tok in it:
        if not tok.startswith("--" + prefix):
            raise ValueError(f"unrecognized argument {tok!r}")
        key, eq, value = tok[2 + len(prefix) :].partition("=")
        if not eq:
            try:
                value = next(it)
            except StopIteration:
                raise ValueError(f"{tok} needs a value") from None
        out[key] = _literal(value)
    return out


def _import_class(name: str, dotted: str) -> type:
    """The class ``dotted`` names; a ValueError unless it is a class with fit and predict."""
    module_name, _, cls_name = dotted.rpartition(".")
    if not module_name:
        raise ValueError(
            f"unknown classifier {name!r}: use one of {', '.join(CLASSIFIERS)} or a dotted "
            "class name like sklearn.linear_model.LogisticRegression"
        )
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except Exception as exc:  # a module's own import can fail in any way
        raise ValueError(f"cannot import classifier {dotted!r}: {exc}") from None
    if not isinstance(cls, type):
        raise ValueError(
            f"{dotted!r} is a {type(cls).__name__}, not a classifier class; give a class "
            "like sklearn.linear_model.LogisticRegression"
        )
    lacking = [m for m in ("fit", "predict") if not callable(getattr(cls, m, None))]
    if lacking:
        raise ValueError(f"{dotted!r} is not a classifier: it has no {' or '.join(lacking)} "
                         "method")
    return cls


def _estimator_kind(est: Any) -> str | None:
    """scikit-learn's estimator type ("classifier", "clusterer", ...); None if it has none."""
    from sklearn.utils import get_tags

    try:
        return get_tags(est).estimator_type
    except Exception:  # not a scikit-learn estimator: it has no tags to read
        return None


def resolve_classifier(name: str, params: dict[str, Any] | None = None) -> Any:
    """Build a classifier from a short name or a dotted class name, skorch-style.

    Parameters
    ----------
    name : str
        ``linearsvc``, ``logreg``, ``sgd``, ``ridge``, ``perceptron``, ``lda``, or a dotted
        path such as ``sklearn.linear_model.LogisticRegression``.
    params : dict, optional
        Constructor parameters (set with ``set_params``, so nested names work for Pipelines).

    Returns
    -------
    estimator

    Raises
    ------
    ValueError
        An unknown short name, a name that cannot be imported, that is not a class, or whose
        class is no scikit-learn classifier (no ``fit``/``predict``, or an estimator of
        another kind such as a clusterer), a class that cannot be built without arguments,
        or a bad parameter. The message is one line naming the value.
    """
    key = name.lower()
    dotted = CLASSIFIERS.get(key, name)
    cls = _import_class(name, dotted)
    try:
        est = cls()
    except Exception as exc:  # e.g. Pipeline needs its steps
        raise ValueError(f"cannot build classifier {dotted!r} without arguments: {exc}") from None
    kind = _estimator_kind(est)
    if kind != "classifier":
        raise ValueError(
            f"{dotted!r} is not a classifier"
            + (f" (scikit-learn says it is a {kind})" if kind else
               " (it is no scikit-learn estimator: it declares no estimator type)")
            + f"; use one of {', '.join(CLASSIFIERS)} or a scikit-learn classifier class"
        )
    merged = {**_CLASSIFIER_DEFAULTS.get(key, {}), **(params or {})}
    try:
        est.set_params(**merged)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad parameter for {cls.__name__}: {exc}") from None
    return est


def cross_validate_head(
    classifier: Any, X: np.ndarray, y: np.ndarray, folds: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, shuffled k-fold cross-validation of a linear head on GAP vectors.

    Parameters
    ----------
    classifier : estimator
        Cloned for every fold (:class:`~gapsvm.core.head.GapHead` wraps it).
    X : ndarray of shape (n, n_channels)
    y : ndarray of shape (n,)
    folds : int
        At least 2, and at most the smallest class's size.
    seed : int
        ``random_state`` of the fold shuffle.

    Returns
    -------
    predictions : ndarray of shape (n,)
        Each image's label as predicted by the head that did not see it.
    scores : ndarray of shape (folds,)
        Accuracy of each fold, in fold order.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from gapsvm.core.head import GapHead

    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(GapHead(classifier), X, y, cv=skf)
    # The folds of a seeded splitter are the same on every split() call, so each fold's
    # accuracy comes from the predictions above rather than from a second round of fits.
    scores = np.array([np.mean(pred[test] == y[test]) for _, test in skf.split(X, y)])
    return pred, scores


def _weights_from_meta(meta: dict[str, Any], weights: Any) -> Any:
    """``--weights auto``: the weights the features were computed with, when that is a name."""
    if weights != "auto":
        return weights
    name = meta["weights"]["name"]
    if name == "imagenet":
        return "imagenet"
    if name.startswith("random("):
        return None
    raise ValueError(
        f"the features were computed with the weights file {name!r}; pass it with --weights PATH"
    )


def _cross_validation(
    clf: Any, X: np.ndarray, y: np.ndarray, cv: int, seed: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run and print the cross-validation; its entries of ``training_info_`` (or none)."""
    from sklearn.metrics import classification_report

    smallest = int(np.unique(y, return_counts=True)[1].min())
    folds = min(cv, smallest)
    if cv == 0:
        return {}
    if folds < 2:
        log(f"cross-validation skipped: the smallest class has {smallest} image(s)")
        return {}
    pred, scores = cross_validate_head(clf, X, y, folds, seed)
    log(f"{folds}-fold accuracy: {scores.mean():.4f} +- {scores.std():.4f} "
        f"(folds: {', '.join(f'{s:.3f}' for s in scores)})")
    log(classification_report(y, pred, digits=3))
    return {"cv_folds": folds, "cv_accuracy_mean": float(scores.mean()),
            "cv_accuracy_std": float(scores.std()), "cv_scores": [float(s) for s in scores]}


def train_from_features(
    features: str | os.PathLike,
    *,
    classifier: str = "linearsvc",
    params: dict[str, Any] | None = None,
    cv: int = 5,
    seed: int = 0,
    weights: Any = "auto",
    log: Callable[[str], None] = print,
) -> GapClassifier:
    """Cross-validate a head on a ``gapsvm features`` file, then fit it on every image.

    Parameters
    ----------
    features : str or path-like
        A features file with labels (its images were in one sub-folder per class).
    classifier : str, default="linearsvc"
        A short name or dotted class name (:func:`resolve_classifier`).
    params : dict, optional
        The classifier's parameters.
    cv : int, default=5
        Cross-validation folds (fewer if the smallest class is smaller); 0 skips it.
    seed : int, default=0
        Seed of the fold shuffle.
    weights : "auto", "imagenet", path or None, default="auto"
        The model's backbone weights; ``"auto"`` takes them from the features' metadata,
        which works for ImageNet and random weights (a weights file must be given again).
    log : callable, default=print
        Receives the summary, the fold accuracies and the classification report.

    Returns
    -------
    GapClassifier
        Fitted, with ``training_info_`` set (see :class:`~gapsvm.GapClassifier`).

    Raises
    ------
    ValueError
        The file has no labels or a single class, ``cv`` is negative or 1, the classifier
        cannot be built, or the weights cannot be told from the metadata.
    """
    cv = check_folds(cv)
    data = read_features_file(features)
    X, y, meta = data["X"], data["y"], data["meta"]
    if y is None:
        raise ValueError(
            f"{features} has no labels (its images were in a flat folder); train needs "
            "a folder with one sub-folder per class"
        )
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"{features} has a single class {classes.tolist()}: need two or more")
    log(f"{len(y)} images, classes {dict(zip(classes.tolist(), counts.tolist(), strict=True))}")
    log(f"features: {meta['backbone']} {meta['layer']}, input {meta['input_size']}, "
        f"weights {meta['weights']['name']}")
    clf = resolve_classifier(classifier, params)
    log(f"classifier: {clf!r}")
    from gapsvm.estimator.classifier import GapClassifier

    cv_info = _cross_validation(clf, X, y, cv, seed, log)
    model = GapClassifier(
        clf, backbone=meta["backbone"], weights=_weights_from_meta(meta, weights),
        input_size=parse_input_size(meta["input_size"]), precision=meta["precision"],
    )
    model.fit_features(X, y, meta)
    model.training_info_ = {
        "n_images": len(y), "features_file": os.path.basename(features),
        "classifier": repr(clf), **cv_info, **_training_images(data, log),
    }
    return model


def _training_images(data: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """``training_info_`` entries by which ``gapsvm report`` recognises the training images:
    their content keys and the preprocessing version the keys cover. The features file holds
    the keys computed when its images were hashed for the cache; one written before it did
    has its images read and hashed again."""
    from gapsvm.core.cache import PREPROCESS_VERSION

    root, paths = data.get("data_dir"), data.get("paths")
    recorded = data.get("keys")
    if recorded is not None and data["meta"].get("preprocess_version") == PREPROCESS_VERSION:
        keys: list[str | None] = list(recorded)
    elif not root or paths is None:
        keys = [None] * len(data["X"])
    else:
        keys = image_keys([os.path.join(root, *str(p).split("/")) for p in paths])
    missing = sum(k is None for k in keys)
    if missing:
        log(f"{missing} of {len(keys)} training image(s) could not be read again from "
            f"{root!r} to record their content; gapsvm report will not recognise them")
    return {"train_keys": sorted({k for k in keys if k is not None}),
            "train_keys_preprocess_version": PREPROCESS_VERSION}
