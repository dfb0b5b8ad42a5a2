"""Bounding boxes from class activation maps (CAMs), their IoU, and drawing them.

Box convention
--------------
A :class:`Box` holds integer pixel coordinates ``(x_min, y_min, x_max, y_max)`` where ``x`` is
the column and ``y`` the row, and **``x_max`` / ``y_max`` are exclusive**: the box covers the
pixels ``x_min <= x < x_max`` and ``y_min <= y < y_max``, i.e. exactly the NumPy slice
``array[y_min:y_max, x_min:x_max]``. So ``width = x_max - x_min``, ``area = width * height``
(no ``+ 1`` anywhere), two boxes that share an edge such as ``(0, 0, 2, 2)`` and
``(2, 0, 4, 2)`` do not overlap, and an empty box has ``x_min == x_max`` or ``y_min == y_max``.
Every function in :mod:`gapsvm.boxes` and :mod:`gapsvm.metrics` uses this convention.
Ground truth in other conventions must be converted first: PASCAL VOC XML boxes are 1-based
and inclusive, so ``(xmin - 1, ymin - 1, xmax, ymax)``; COCO ``[x, y, w, h]`` gives
``(x, y, x + w, y + h)`` after rounding.

From a CAM to boxes
-------------------
:func:`cam_to_boxes` follows the text of the CAM paper (Zhou et al., 2016): keep the
pixels whose value is at least 20 % of the CAM's maximum, then take the bounding box of the
largest connected component (8-connectivity).

The paper's released code does something else. ``generate_bbox.m`` in the authors' repository
(github.com/zhoubolei/CAM, formerly metalbubble/CAM) runs the C++ tool ``bboxgenerator/dt_box``
with ``bbox_threshold = [20, 100, 110]`` on the heatmap saved as an 8-bit JPEG (by
``ILSVRC_generate_heatmap.m``). The tool thresholds the *gray levels* of that image at 20, 100
and 110, post-processes each binary map with a distance transform, takes the bounding
rectangle of every contour at all three levels, ranks them by area and drops boxes that
overlap a larger one by more than half. gapsvm follows the paper's text instead because a
fraction of the maximum depends only on the *shape* of the CAM: multiplying the CAM by any
positive constant (a different weight norm, a different normalisation before display) leaves
the boxes unchanged. Fixed gray levels are only meaningful together with the exact rescaling
that produced the 0..255 image (the authors' ILSVRC script divides by the maximum, which makes
20/255 roughly 8 % of the maximum; a min-max normalisation, as many re-implementations use,
moves every level) and with the JPEG quantisation of that image.

A fraction of the maximum is *not* invariant to adding a constant, and only positive evidence
counts: if the CAM has no positive value there is nothing to localise and :func:`cam_to_boxes`
returns an empty list.

References
----------
.. [1] B. Zhou, A. Khosla, A. Lapedriza, A. Oliva, A. Torralba. "Learning Deep Features for
   Discriminative Localization". CVPR 2016 (weakly-supervised object localisation).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from gapsvm.core.validation import (
    check_image_hw,
    check_integral,
    check_map,
    check_unit_interval,
)

__all__ = [
    "Box",
    "BoxLike",
    "as_box",
    "as_boxes",
    "box_array",
    "boxes_to_mask",
    "cam_to_boxes",
    "draw_boxes",
    "iou",
    "iou_matrix",
]


_MODES = ("largest", "all")


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates, with exclusive ``x_max`` and ``y_max``.

    The box covers the pixels ``x_min <= x < x_max`` (columns) and ``y_min <= y < y_max``
    (rows), i.e. ``array[y_min:y_max, x_min:x_max]``.

    Parameters
    ----------
    x_min, y_min : int
        First column and first row inside the box.
    x_max, y_max : int
        One past the last column and one past the last row inside the box (exclusive).
        Integral floats such as ``12.0`` and NumPy integers are converted to ``int``.
    score : float, optional
        Peak CAM value inside the component the box was made from (see
        :func:`cam_to_boxes`); ``nan`` (the default) for boxes that do not come from a CAM,
        such as ground truth. The score does not take part in equality or hashing: two boxes
        are equal when they cover the same pixels.

    Raises
    ------
    TypeError
        If a coordinate is not a real number (or is a bool).
    ValueError
        If a coordinate is a non-integral float, or ``x_max < x_min`` or ``y_max < y_min``.
    """

    x_min: int
    y_min: int
    x_max: int
    y_max: int
    score: float = field(default=math.nan, compare=False)

    def __post_init__(self) -> None:
        # frozen=True forbids normal assignment; normalising the types once here means every
        # consumer (cv2 included, which rejects numpy.int64 in some builds) sees plain ints.
        for name in ("x_min", "y_min", "x_max", "y_max"):
            object.__setattr__(self, name, check_integral(getattr(self, name), name))
        object.__setattr__(self, "score", float(self.score))
        if self.x_max < self.x_min or self.y_max < self.y_min:
            raise ValueError(
                f"box {self.as_tuple()} has x_max < x_min or y_max < y_min "
                "(expected (x_min, y_min, x_max, y_max) with exclusive maxima)"
            )

    @property
    def width(self) -> int:
        """Number of columns covered, ``x_max - x_min``."""
        return self.x_max - self.x_min

    @property
    def height(self) -> int:
        """Number of rows covered, ``y_max - y_min``."""
        return self.y_max - self.y_min

    @property
    def area(self) -> int:
        """Number of pixels covered, ``width * height`` (0 for an empty box)."""
        return self.width * self.height

    def as_tuple(self) -> tuple[int, int, int, int]:
        """Return ``(x_min, y_min, x_max, y_max)`` (exclusive maxima; the score is dropped)."""
        return (self.x_min, self.y_min, self.x_max, self.y_max)


#: Anything :func:`as_box` accepts: a :class:`Box` or four coordinates in Box order.
BoxLike = Box | Sequence[int] | np.ndarray


def as_box(box: BoxLike) -> Box:
    """Return ``box`` as a :class:`Box`.

    Parameters
    ----------
    box : Box or sequence of 4 ints
        A :class:`Box` (returned unchanged) or ``(x_min, y_min, x_max, y_max)`` with exclusive
        maxima, e.g. a tuple, list or 1-D array of length 4.

    Returns
    -------
    Box
        The box; its score is ``nan`` when built from coordinates.

    Raises
    ------
    TypeError
        If ``box`` is neither a Box nor a sequence of four numbers.
    ValueError
        If the coordinates are not integral or not ordered (see :class:`Box`).
    """
    if isinstance(box, Box):
        return box
    if isinstance(box, str | bytes) or not hasattr(box, "__len__") or len(box) != 4:
        raise TypeError(
            f"expected a Box or (x_min, y_min, x_max, y_max), got {type(box).__name__}"
            + (f" of length {len(box)}" if hasattr(box, "__len__") else "")
        )
    return Box(*box)


def as_boxes(boxes: Iterable[BoxLike]) -> list[Box]:
    """Return a list of :class:`Box` from an iterable of boxes.

    Parameters
    ----------
    boxes : iterable of Box or 4-sequences
        For example a list of Box, a list of 4-tuples, or an ``(n, 4)`` integer array.

    Returns
    -------
    list of Box

    Raises
    ------
    TypeError
        If ``boxes`` is a single Box (wrap it in a list) or an element is not box-like.
    ValueError
        If an element has invalid coordinates.
    """
    if isinstance(boxes, Box):
        raise TypeError("expected a sequence of boxes, got a single Box; wrap it in a list")
    return [as_box(b) for b in boxes]


def box_array(boxes: Iterable[BoxLike]) -> np.ndarray:
    """:func:`as_boxes` as an ``int64`` ``(n, 4)`` array, the input :func:`iou_matrix` takes."""
    return np.array([b.as_tuple() for b in as_boxes(boxes)], dtype=np.int64).reshape(-1, 4)


def boxes_to_mask(shape: Sequence[int], boxes: Iterable[BoxLike]) -> np.ndarray:
    """Return the boolean mask of the union of ``boxes`` over an image of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(h, w)`` or ``(h, w, c)``; only ``h`` and ``w`` are used.
    boxes : iterable of Box or 4-sequences
        Boxes in the exclusive convention. Parts outside the image are ignored (clipped).

    Returns
    -------
    numpy.ndarray
        ``bool`` array of shape ``(h, w)``, True on pixels covered by at least one box; a
        pixel inside several boxes is still a single True, which is what makes the union
        count overlapping boxes once.

    Raises
    ------
    ValueError
        If ``shape`` is not a valid image shape or a box is invalid.
    TypeError
        If a box is not box-like.
    """
    h, w = check_image_hw(shape)
    mask = np.zeros((h, w), dtype=bool)
    for b in as_boxes(boxes):
        # Clamping each bound keeps x0 <= x1 (clamping is monotone), so slices never wrap
        # around the way negative NumPy indices would.
        x0, x1 = min(max(b.x_min, 0), w), min(max(b.x_max, 0), w)
        y0, y1 = min(max(b.y_min, 0), h), min(max(b.y_max, 0), h)
        mask[y0:y1, x0:x1] = True
    return mask


def cam_to_boxes(
    cam: np.ndarray,
    threshold: float = 0.2,
    mode: str = "largest",
    *,
    connectivity: int = 8,
) -> list[Box]:
    """Bounding boxes of the connected regions where a CAM is at least ``threshold * max``.

    Pixels with ``cam >= threshold * cam.max()`` are kept (the comparison is inclusive) and
    grouped into connected components; each component gives the smallest box that covers it.

    Parameters
    ----------
    cam : numpy.ndarray
        2-D real map ``(h, w)``, usually the CAM upsampled to the image size; the boxes are in
        the pixel grid of this array. Must be finite.
    threshold : float, default 0.2
        Fraction of the maximum, in [0, 1]. 0.2 is the value of the CAM paper. 0 keeps every
        non-negative pixel; 1 keeps only the pixels equal to the maximum.
    mode : {"largest", "all"}, default "largest"
        ``"largest"``: a one-element list with the box of the component with the most pixels
        (ties: higher peak, then the component met first in row-major order), as in the
        paper. ``"all"``: one box per component, sorted by peak value, highest first (ties:
        more pixels first, then row-major order).
    connectivity : {8, 4}, default 8
        Pixel connectivity of the components. 8 (diagonal neighbours connect) is the CAM
        default; 4 is offered for comparison.

    Returns
    -------
    list of Box
        Boxes with exclusive maxima, each lying inside the image, each non-empty, with
        ``score`` set to the highest CAM value inside its component. Empty when
        ``cam.max() <= 0``: with no positive evidence there is nothing to localise, and a
        threshold relative to a non-positive maximum would be meaningless (for a negative
        maximum it would even keep *more* pixels as the threshold grows).

    Raises
    ------
    TypeError
        If ``threshold`` is not a real number.
    ValueError
        If ``cam`` is not a finite, non-empty 2-D real array, ``threshold`` is outside
        [0, 1], ``mode`` is not ``"largest"`` or ``"all"``, or ``connectivity`` is not 4 or 8.

    See the module docstring for why a fraction of the maximum and not fixed gray levels.
    """
    cam = check_map(cam)
    threshold = check_unit_interval(threshold, "threshold")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if isinstance(connectivity, bool) or connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")

    peak = float(cam.max())
    if peak <= 0.0:
        return []
    keep = (cam >= threshold * peak).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(
        keep, connectivity=connectivity, ltype=cv2.CV_32S
    )
    # Label 0 is OpenCV's background (the pixels below the threshold); components are 1..n-1.
    # There is at least one, since the maximum itself always passes the threshold.
    peaks = np.full(n_labels, -np.inf)
    np.maximum.at(peaks, labels.ravel(), cam.ravel())
    ids = np.arange(1, n_labels)
    areas = stats[ids, cv2.CC_STAT_AREA]
    comp_peaks = peaks[ids]

    def box_of(label: int) -> Box:
        x, y = int(stats[label, cv2.CC_STAT_LEFT]), int(stats[label, cv2.CC_STAT_TOP])
        w, h = int(stats[label, cv2.CC_STAT_WIDTH]), int(stats[label, cv2.CC_STAT_HEIGHT])
        return Box(x, y, x + w, y + h, score=float(peaks[label]))

    # np.lexsort sorts by its *last* key first; labels are in row-major order of first pixel,
    # so using them as the final key makes the order deterministic.
    if mode == "largest":
        best = np.lexsort((ids, -comp_peaks, -areas))[0]
        return [box_of(int(ids[best]))]
    order = np.lexsort((ids, -areas, -comp_peaks))
    return [box_of(int(ids[i])) for i in order]


def iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union of two boxes in the exclusive convention.

    Parameters
    ----------
    a, b : Box or sequence of 4 ints
        ``(x_min, y_min, x_max, y_max)`` with exclusive maxima.

    Returns
    -------
    float
        ``|a ∩ b| / |a ∪ b|`` in [0, 1]; 0.0 when the union is empty (two empty boxes).
        Because maxima are exclusive there is no ``+ 1`` in the areas (the PASCAL VOC devkit
        adds one because its boxes are inclusive); boxes that only share an edge have IoU 0.

    Raises
    ------
    TypeError, ValueError
        If an argument is not a valid box (see :func:`as_box`).
    """
    a, b = as_box(a), as_box(b)
    inter_w = max(0, min(a.x_max, b.x_max) - max(a.x_min, b.x_min))
    inter_h = max(0, min(a.y_max, b.y_max) - max(a.y_min, b.y_min))
    inter = inter_w * inter_h
    union = a.area + b.area - inter
    if union == 0:
        return 0.0
    # Integer arithmetic up to here, so identical boxes give exactly 1.0.
    return inter / union


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`iou` of every row of ``a`` with every row of ``b``, vectorised.

    Parameters
    ----------
    a, b : numpy.ndarray
        Integer ``(n, 4)`` and ``(m, 4)`` boxes ``(x_min, y_min, x_max, y_max)``, exclusive
        maxima, already checked (:func:`as_box` checks one box).

    Returns
    -------
    numpy.ndarray
        ``float64`` ``(n, m)``; 0 where a union is empty, as :func:`iou` gives.
    """
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)


def _validate_color(color: Sequence[int]) -> tuple[int, int, int]:
    """Return ``color`` as three ints in 0..255."""
    if isinstance(color, str) or not hasattr(color, "__len__") or len(color) != 3:
        raise ValueError(f"color must be an (r, g, b) triple, got {color!r}")
    out = tuple(check_integral(c, "color component") for c in color)
    if not all(0 <= c <= 255 for c in out):
        raise ValueError(f"color components must be in 0..255, got {color!r}")
    return out  # type: ignore[return-value]


def _draw_label(image: np.ndarray, text: str, box: Box, color: tuple[int, int, int]) -> None:
    """Write ``text`` on a filled tag of ``color`` at the top-left corner of ``box``."""
    font, scale, weight = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1
    (tw, th), baseline = cv2.getTextSize(text, font, scale, weight)
    tag_h = th + baseline + 2
    # Above the box when there is room, otherwise inside its top edge, so the tag stays
    # visible for boxes that touch the top of the image.
    top = box.y_min - tag_h if box.y_min - tag_h >= 0 else box.y_min
    cv2.rectangle(image, (box.x_min, top), (box.x_min + tw + 1, top + tag_h - 1), color, -1)
    # Black text on light tags, white on dark ones (ITU-R BT.601 luma of the tag colour).
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luma >= 128 else (255, 255, 255)
    cv2.putText(image, text, (box.x_min + 1, top + th + 1), font, scale, ink, weight, cv2.LINE_AA)


def _canvas(image_rgb: np.ndarray) -> np.ndarray:
    """A fresh C-contiguous ``uint8`` RGB copy to draw on (gray becomes three channels):
    cv2 draws in place and needs contiguous memory, and the caller's array stays untouched."""
    img = np.asarray(image_rgb)
    if img.dtype != np.uint8:
        raise ValueError(
            f"image_rgb must be uint8, got {img.dtype}; convert explicitly "
            "(e.g. np.clip(x * 255, 0, 255).astype(np.uint8) for floats in [0, 1])"
        )
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 3:
        return np.array(img, dtype=np.uint8, order="C", copy=True)
    raise ValueError(f"image_rgb must have shape (h, w, 3) or (h, w), got {img.shape}")


def _one_label_per_box(labels: Sequence[str] | None, n_boxes: int) -> list[str]:
    """The labels as strings, one per box ("" draws no tag)."""
    if labels is None:
        return [""] * n_boxes
    if isinstance(labels, str):
        raise ValueError("labels must be a sequence of strings, one per box, not a string")
    label_list = [str(t) for t in labels]
    if len(label_list) != n_boxes:
        raise ValueError(f"got {len(label_list)} labels for {n_boxes} boxes")
    return label_list


def draw_boxes(
    image_rgb: np.ndarray,
    boxes: Iterable[BoxLike],
    color: Sequence[int] = (255, 255, 0),
    thickness: int = 2,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Return a copy of an RGB image with box outlines (and optional labels) drawn on it.

    Parameters
    ----------
    image_rgb : numpy.ndarray
        ``uint8`` image, RGB ``(h, w, 3)`` or grayscale ``(h, w)`` (drawn on as three equal
        channels). Not modified.
    boxes : iterable of Box or 4-sequences
        Boxes in the exclusive convention. The outline's outermost pixels are the box's own
        border pixels (OpenCV's second corner is inclusive, so ``(x_max - 1, y_max - 1)`` is
        passed); a thickness above 1 grows the line to both sides of that border. Empty boxes
        are skipped; parts outside the image are clipped.
    color : tuple of 3 ints, default (255, 255, 0)
        Outline colour as **(r, g, b)**, because the image is RGB in memory (OpenCV's own
        BGR convention does not apply here). The default is yellow.
    thickness : int, default 2
        Line width in pixels, at least 1.
    labels : sequence of str, optional
        One text per box (e.g. ``f"{box.score:.2f}"``), written on a tag of ``color`` at the
        box's top-left corner; an empty string draws no tag.

    Returns
    -------
    numpy.ndarray
        A new ``uint8`` array of shape ``(h, w, 3)``, RGB.

    Raises
    ------
    ValueError
        If the image is not ``uint8`` ``(h, w)`` or ``(h, w, 3)``, ``color`` is not three
        values in 0..255, ``thickness < 1``, or ``labels`` does not have one entry per box.
    TypeError
        If a box is not box-like or ``thickness`` is not an integer.
    """
    out = _canvas(image_rgb)
    box_list = as_boxes(boxes)
    rgb = _validate_color(color)
    if isinstance(thickness, bool) or not isinstance(thickness, numbers.Integral):
        raise TypeError(f"thickness must be an integer, got {type(thickness).__name__}")
    if thickness < 1:
        raise ValueError(f"thickness must be at least 1, got {thickness}")
    label_list = _one_label_per_box(labels, len(box_list))
    for box, text in zip(box_list, label_list, strict=True):
        if box.area == 0:
            continue
        # LINE_8 rather than anti-aliasing, so the outline sits exactly on box pixels.
        cv2.rectangle(
            out,
            (box.x_min, box.y_min),
            (box.x_max - 1, box.y_max - 1),
            rgb,
            int(thickness),
            cv2.LINE_8,
        )
        if text:
            _draw_label(out, text, box, rgb)
    return out
