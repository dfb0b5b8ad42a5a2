"""The one overlay path: a CAM drawn over its image as a jet heat map, with boxes.

Every picture gapsvm makes (``gapsvm cam``, ``report``, ``evaluate``, the notebook) goes
through :func:`draw_overlay`: the image (optionally resized for display), the map upsampled
to it and normalised (:data:`gapsvm.core.cam.NORMALIZATIONS`), ground-truth boxes in white,
predicted boxes in magenta, and a cross at the map's peak. OpenCV's colour maps are BGR;
everything here is RGB in and out.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from gapsvm.core.boxes import BoxLike, as_box, draw_boxes
from gapsvm.core.cam import normalize_cam, upsample_cam
from gapsvm.core.decode import resize_image

__all__ = [
    "GT_COLOR",
    "PRED_COLOR",
    "draw_overlay",
    "evaluation_overlay",
    "overlay",
]

#: Colours of the overlays, RGB: ground truth white, predicted boxes magenta (not in jet).
GT_COLOR = (255, 255, 255)
PRED_COLOR = (255, 0, 255)


def overlay(
    image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, normalize: bool | str = True
) -> np.ndarray:
    """Blend a jet-coloured CAM over an RGB image, as the original post drew it.

    Parameters
    ----------
    image : ndarray of shape (h, w, 3), uint8 RGB
    cam : ndarray of shape (h', w')
        Upsampled to the image size if needed.
    alpha : float, default=0.5
        Weight of the heatmap.
    normalize : bool or str, default=True
        True: min-max scale the map first; a name from
        :data:`~gapsvm.core.cam.NORMALIZATIONS` picks another normalisation; False: the map
        is already in [0, 1] (values outside are clipped).

    Returns
    -------
    ndarray of shape (h, w, 3), uint8 RGB
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB (h, w, 3), got {image.dtype} {image.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    m = upsample_cam(cam, image.shape[:2])
    if normalize is False:
        m = np.clip(m, 0.0, 1.0)
    else:
        m = normalize_cam(m, "minmax" if normalize is True else normalize)
    heat_bgr = cv2.applyColorMap((m * 255 + 0.5).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat_bgr, cv2.COLOR_BGR2RGB)  # OpenCV colour maps are BGR
    return cv2.addWeighted(heat, alpha, image, 1.0 - alpha, 0.0)


def _scaled(boxes: Iterable[BoxLike], sy: float, sx: float) -> list[tuple[int, ...]]:
    out = []
    for b in boxes:
        b = as_box(b)
        out.append((round(b.x_min * sx), round(b.y_min * sy),
                    round(b.x_max * sx), round(b.y_max * sy)))
    return out


def draw_overlay(
    image: np.ndarray,
    cam: np.ndarray,
    *,
    alpha: float = 0.5,
    normalize: bool | str = True,
    gt_boxes: Iterable[BoxLike] = (),
    pred_boxes: Iterable[BoxLike] = (),
    peak_xy: tuple[int, int] | None = None,
    display_hw: tuple[int, int] | None = None,
    gt_thickness: int = 2,
) -> np.ndarray:
    """A CAM over its image, with boxes and the map's peak: the picture gapsvm writes.

    Parameters
    ----------
    image : ndarray of shape (h, w, 3), uint8 RGB
    cam : ndarray of shape (h', w')
        Any resolution: upsampled to the drawn size.
    alpha : float, default=0.5
        Opacity of the heat map.
    normalize : bool or str, default=True
        As in :func:`overlay`.
    gt_boxes : iterable of Box, default=()
        Ground truth in image pixels, drawn in white (:data:`GT_COLOR`).
    pred_boxes : iterable of Box, default=()
        Boxes found from the map, in image pixels, drawn in magenta (:data:`PRED_COLOR`),
        2 px, over the ground truth.
    peak_xy : (x, y), optional
        A cross (black under white, visible on any colour) at this image pixel.
    display_hw : (height, width), optional
        Draw at this size instead of the image's own (boxes and peak are scaled).
    gt_thickness : int, default=2
        Line width of the ground-truth boxes.

    Returns
    -------
    ndarray of shape display_hw + (3,) (default the image's), uint8 RGB
    """
    h, w = image.shape[:2]
    dh, dw = (h, w) if display_hw is None else display_hw
    shown = resize_image(image, (dh, dw))
    out = overlay(shown, cam, alpha, normalize)
    sy, sx = dh / h, dw / w
    gt = _scaled(gt_boxes, sy, sx)
    if gt:
        out = draw_boxes(out, gt, color=GT_COLOR, thickness=gt_thickness)
    pred = _scaled(pred_boxes, sy, sx)
    if pred:
        out = draw_boxes(out, pred, color=PRED_COLOR, thickness=2)
    if peak_xy is not None:
        px, py = round((peak_xy[0] + 0.5) * sx), round((peak_xy[1] + 0.5) * sy)
        cv2.drawMarker(out, (px, py), (0, 0, 0), cv2.MARKER_CROSS, 18, 4)
        cv2.drawMarker(out, (px, py), (255, 255, 255), cv2.MARKER_CROSS, 16, 2)
    return out


def evaluation_overlay(
    image_rgb: np.ndarray,
    cam: np.ndarray,
    pred_boxes: Iterable[BoxLike] = (),
    gt_boxes: Iterable[BoxLike] | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """``gapsvm evaluate``'s picture: :func:`draw_overlay` with 1 px ground truth.

    Parameters
    ----------
    image_rgb : numpy.ndarray
        ``uint8`` RGB image ``(h, w, 3)``.
    cam : numpy.ndarray
        2-D map (any resolution; upsampled and min-max scaled for display).
    pred_boxes : iterable of Box
        Drawn in magenta (:data:`PRED_COLOR`), 2 px.
    gt_boxes : iterable of Box, optional
        Drawn in white (:data:`GT_COLOR`), 1 px, before the predictions.
    alpha : float, default 0.5
        Opacity of the heat map.

    Returns
    -------
    numpy.ndarray
        New ``uint8`` RGB image of the same size.
    """
    return draw_overlay(image_rgb, cam, alpha=alpha, gt_boxes=gt_boxes or (),
                        pred_boxes=pred_boxes, gt_thickness=1)
