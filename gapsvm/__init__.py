"""gapsvm: where does an image classifier look?

Frozen Keras VGG16 features (``block5_conv3``), global average pooling, a linear
scikit-learn head, and class activation maps that add up exactly to the head's scores.
TensorFlow is imported only when a backbone is built. The package is layered, imports
pointing one way (``docs/architecture.md``): ``utils`` < ``core`` < ``network`` <
``estimator`` < ``workflows`` < ``cli``.
"""

from gapsvm import _legacy
from gapsvm._version import __version__
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
