"""Training a head on a features file: classifier resolution and cross-validation.

``--classifier`` takes a short name (:data:`CLASSIFIERS`) or a dotted class name, skorch
style; nested ``--classifier__PARAM`` values are Python literals where they parse.
"""

from __future__ import annotations

import ast
import importlib
from typing import Any

__all__ = [
    "resolve_classifier",
]


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
    """
    key = name.lower()
    dotted = CLASSIFIERS.get(key, name)
    module_name, _, cls_name = dotted.rpartition(".")
    if not module_name:
        raise ValueError(
            f"unknown classifier {name!r}: use one of {', '.join(CLASSIFIERS)} or a dotted "
            "class name like sklearn.linear_model.LogisticRegression"
        )
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import classifier {dotted!r}: {exc}") from None
    est = cls()
    merged = {**_CLASSIFIER_DEFAULTS.get(key, {}), **(params or {})}
    try:
        est.set_params(**merged)
    except ValueError as exc:
        raise ValueError(f"bad parameter for {cls_name}: {exc}") from None
    return est
