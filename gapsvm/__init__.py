"""gapsvm: where does an image classifier look?

Frozen Keras VGG16 features (``block5_conv3``), global average pooling, a linear
scikit-learn head, and class activation maps that add up exactly to the head's scores.
TensorFlow is imported only when a backbone is built.
"""

from ._version import __version__
from .cam import class_activation_map, normalize_cam, overlay, upsample_cam
from .estimator import GapClassifier
from .featurizer import GapFeaturizer
from .head import GapHead, NotLinearError, effective_linear
from .images import ImageReadError, load_directory, read_image
from .persist import ModelLoadError, load_model, save_model
from .weights import WeightsError

__all__ = [
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
