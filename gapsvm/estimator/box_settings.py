"""The box threshold and network inputs a model's boxes use by default, and where they came from.

``gapsvm evaluate --calibrate`` chooses them on a calibration set and records them on the
model (``box_threshold_``, ``box_scales_``, ``box_calibration_``); :meth:`GapClassifier.boxes
<gapsvm.estimator.classifier.GapClassifier.boxes>`, ``gapsvm cam --boxes`` and ``gapsvm
evaluate`` read them here, so one rule decides every default.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from gapsvm.core.boxes import Box, cam_to_boxes
from gapsvm.core.cam import fuse_cams

__all__ = [
    "DEFAULT_THRESHOLD",
    "box_scales",
    "box_threshold",
    "boxes_of",
    "record_box_calibration",
]

#: The CAM paper's box threshold: a fraction of the map's maximum.
DEFAULT_THRESHOLD = 0.2


def box_threshold(model: Any, threshold: float | None = None) -> tuple[float, str]:
    """The box threshold to use, and a phrase saying where it came from.

    Parameters
    ----------
    model : GapClassifier
    threshold : float or None
        A threshold the caller gave (it wins), or None: the model's calibrated
        ``box_threshold_`` when recorded, else :data:`DEFAULT_THRESHOLD`.

    Returns
    -------
    (float, str)
        The threshold and its source: ``"given"``, the recorded ``box_calibration_`` (e.g.
        ``"calibrated on cal.csv (305 images)"``) or ``"default 0.2"``.
    """
    if threshold is not None:
        return threshold, "given"
    recorded = getattr(model, "box_threshold_", None)
    if recorded is None:
        return DEFAULT_THRESHOLD, f"default {DEFAULT_THRESHOLD:g}"
    return float(recorded), str(getattr(model, "box_calibration_", "calibrated"))


def box_scales(model: Any) -> tuple[Any, ...] | None:
    """The network inputs recorded by calibration (``box_scales_``), or None."""
    scales = getattr(model, "box_scales_", None)
    return None if scales is None else tuple(scales)


def record_box_calibration(
    model: Any, threshold: float, scales: Sequence[Any], source: str
) -> None:
    """Record a calibration on ``model``: plain floats and tuples, as ``.skops`` loads safely.

    Parameters
    ----------
    model : GapClassifier
        Fitted; modified in place.
    threshold : float
        The chosen box threshold, a fraction of the map's maximum in [0, 1].
    scales : sequence
        The chosen network inputs: scales of each photo (float) or fixed ``(h, w)`` sizes.
    source : str
        Where they were chosen, e.g. ``"calibrated on cal.csv (305 images)"``.
    """
    model.box_threshold_ = float(threshold)
    model.box_scales_ = tuple(
        tuple(int(v) for v in s) if isinstance(s, tuple | list) else float(s) for s in scales
    )
    model.box_calibration_ = str(source)


def boxes_of(
    model: Any, X: Any, target: Any, threshold: float | None, mode: str, input_size: Any
) -> list[list[Box]]:
    """:meth:`GapClassifier.boxes`: each image's CAM, upsampled (and averaged over the
    recorded inputs when ``input_size`` is ``"fit"`` and calibration recorded some), boxed."""
    thr, _ = box_threshold(model, threshold)
    if isinstance(thr, bool) or not isinstance(thr, numbers.Real):
        raise TypeError(f"threshold must be a number in [0, 1], got {thr!r}")
    cam_to_boxes(np.ones((1, 1)), thr, mode)  # checked before the network runs, not after
    recorded = box_scales(model)
    sizes = recorded if (isinstance(input_size, str) and input_size == "fit"
                         and recorded) else (input_size,)
    infos = [model.explain(X, target, input_size=s) for s in sizes]
    out = []
    for j, hw in enumerate(infos[0].image_hw):
        cam = fuse_cams([info.cams[j] for info in infos], hw)
        out.append(cam_to_boxes(cam, thr, mode))
    return out
