"""gapsvm: where does an image classifier look?

Frozen Keras VGG16 features (``block5_conv3``), global average pooling, a linear
scikit-learn head, and class activation maps that add up exactly to the head's scores.
TensorFlow is imported only when a backbone is built. The package is layered, imports
pointing one way (``docs/architecture.md``): ``utils`` < ``core`` < ``network`` <
``estimator`` < ``workflows`` < ``cli``.

The public names below are imported on first use (PEP 562), so ``import gapsvm`` and the
``gapsvm`` command line start without loading scikit-learn or OpenCV until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gapsvm import _legacy
from gapsvm._version import __version__

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from gapsvm.core.cam import class_activation_map, normalize_cam, upsample_cam
    from gapsvm.core.decode import ImageReadError, read_image
    from gapsvm.core.head import GapHead, NotLinearError, effective_linear
    from gapsvm.core.overlay import overlay
    from gapsvm.core.scan import load_directory
    from gapsvm.estimator.classifier import GapClassifier
    from gapsvm.estimator.explanation import Explanation
    from gapsvm.estimator.persist import ModelLoadError, load_model, save_model
    from gapsvm.network.backbone.weights import WeightsError
    from gapsvm.network.featurizer import GapFeaturizer

#: Public name -> the module it lives in.
_HOMES: dict[str, str] = {
    "class_activation_map": "gapsvm.core.cam",
    "normalize_cam": "gapsvm.core.cam",
    "upsample_cam": "gapsvm.core.cam",
    "ImageReadError": "gapsvm.core.decode",
    "read_image": "gapsvm.core.decode",
    "GapHead": "gapsvm.core.head",
    "NotLinearError": "gapsvm.core.head",
    "effective_linear": "gapsvm.core.head",
    "overlay": "gapsvm.core.overlay",
    "load_directory": "gapsvm.core.scan",
    "GapClassifier": "gapsvm.estimator.classifier",
    "Explanation": "gapsvm.estimator.explanation",
    "ModelLoadError": "gapsvm.estimator.persist",
    "load_model": "gapsvm.estimator.persist",
    "save_model": "gapsvm.estimator.persist",
    "WeightsError": "gapsvm.network.backbone.weights",
    "GapFeaturizer": "gapsvm.network.featurizer",
}

_legacy.install()

__all__ = [
    "Explanation",
    "GapClassifier",
    "GapFeaturizer",
    "GapHead",
    "ImageReadError",
    "ModelLoadError",
    "NotLinearError",
    "WeightsError",
    "__version__",
    "class_activation_map",
    "effective_linear",
    "load_directory",
    "load_model",
    "normalize_cam",
    "overlay",
    "read_image",
    "save_model",
    "upsample_cam",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'gapsvm' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
