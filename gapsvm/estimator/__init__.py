"""Layer 3: the scikit-learn estimator, its explanations and its persistence."""

from gapsvm.estimator.classifier import GapClassifier

__all__ = ["GapClassifier"]
