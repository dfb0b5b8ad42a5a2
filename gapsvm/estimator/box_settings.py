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
from gapsvm.core.validation import check_images

__all__ = [
    "DEFAULT_THRESHOLD",
    "box_inputs",
    "box_scales",
    "box_threshold",
    "boxes_of",
    "fused_cams",
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


def box_inputs(model: Any, input_size: Any = "fit") -> tuple[Any, ...]:
    """The network inputs a model's boxes are drawn from.

    Parameters
    ----------
    model : GapClassifier
    input_size : default="fit"
        ``"fit"``: the inputs recorded by calibration (``box_scales_``) when there are some,
        else the model's own input size; anything else is used alone.

    Returns
    -------
    tuple
        One or more ``input_size`` values for :meth:`GapClassifier.explain`.
    """
    recorded = box_scales(model)
    return recorded if (isinstance(input_size, str) and input_size == "fit"
                        and recorded) else (input_size,)


def fused_cams(
    model: Any, X: Any, first: Any, first_size: Any, sizes: Sequence[Any]
) -> list[np.ndarray | None]:
    """Each image's map at image resolution, averaged over the network inputs ``sizes``.

    Parameters
    ----------
    model : GapClassifier
    X : images
        The images ``first`` explains, in the same order.
    first : Explanation
        ``model.explain(X, ..., input_size=first_size)``: its maps are reused for
        ``first_size`` and its classes are explained at the other sizes, so every map of an
        image is of one class even when the prediction would differ between inputs.
    first_size : input size
    sizes : sequence of input sizes

    Returns
    -------
    list of ndarray or None
        One (h, w) map per image (:func:`gapsvm.core.cam.fuse_cams`); None where the image
        could not be read.
    """
    X, _ = check_images(X)
    idx = [i for i, c in enumerate(first.cams) if c is not None]
    labels = first.target_labels
    others = [] if not idx else [
        model.explain([X[i] for i in idx], [labels[i] for i in idx], input_size=s,
                      on_error="skip")
        for s in sizes if s != first_size
    ]
    own = [first.cams[i] for i in idx] if first_size in sizes else [None] * len(idx)
    out: list[np.ndarray | None] = [None] * len(first.cams)
    for k, i in enumerate(idx):
        maps = [m for m in (own[k], *(o.cams[k] for o in others)) if m is not None]
        if len(maps) == len(sizes):  # not when a file changed to unreadable between passes
            out[i] = fuse_cams(maps, first.image_hw[i])
    return out


def boxes_of(
    model: Any, X: Any, target: Any, threshold: float | None, mode: str, input_size: Any
) -> list[list[Box]]:
    """:meth:`GapClassifier.boxes`: each image's CAM, upsampled (and averaged over the
    recorded inputs when ``input_size`` is ``"fit"`` and calibration recorded some), boxed."""
    thr, _ = box_threshold(model, threshold)
    if isinstance(thr, bool) or not isinstance(thr, numbers.Real):
        raise TypeError(f"threshold must be a number in [0, 1], got {thr!r}")
    cam_to_boxes(np.ones((1, 1)), thr, mode)  # checked before the network runs, not after
    sizes = box_inputs(model, input_size)
    first = model.explain(X, target, input_size=sizes[0])
    return [cam_to_boxes(cam, thr, mode) for cam in fused_cams(model, X, first, sizes[0], sizes)]
