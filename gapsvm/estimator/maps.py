"""What a fitted :class:`~gapsvm.estimator.classifier.GapClassifier` draws from its CAMs:
maps at image size, boxes around them, and detections of every instance of a class.

Each method here is built on :meth:`GapClassifier.explain
<gapsvm.estimator.classifier.GapClassifier.explain>`, the one path from images to CAMs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gapsvm.core.cam import normalize_cam, upsample_cam
from gapsvm.core.detection import Detection
from gapsvm.estimator.detection import DEFAULT_NMS_IOU, DEFAULT_SCALES, detect_of
from gapsvm.estimator.targets import is_all
from gapsvm.network.featurizer import stack_if_same

__all__ = ["MapsMixin"]


class MapsMixin:
    """:meth:`cam`, :meth:`boxes` and :meth:`detect` of a fitted model with ``explain``."""

    def cam(
        self,
        X: Any,
        target: Any = None,
        *,
        size: str = "image",
        normalize: bool | str = True,
        input_size: Any = "fit",
    ) -> np.ndarray | list[np.ndarray]:
        """Class activation maps: where in each image the evidence for a class lies.

        ``cam[y, x] = sum_k W[c, k] f_k(y, x)`` on the backbone's feature maps, with ``W[c]``
        the head's (pipeline-folded) weights for class ``c``. Unnormalised at feature
        resolution, its spatial mean plus the class intercept equals the class score.

        Parameters
        ----------
        X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)
        target : None, label, sequence of labels or "all", default=None
            None: each image's predicted class; a label: that class for every image; a
            sequence of length n: one class per image; ``"all"``: every class, in
            ``classes_`` order, from one forward pass per image.
        size : {"image", "features"}, default="image"
            ``"features"``: the raw map at feature resolution; ``"image"``: bilinearly
            upsampled to each image's own size.
        normalize : bool or str, default=True
            Scale each map into [0, 1]: True is ``"minmax"``, a name picks another of
            :data:`gapsvm.core.cam.NORMALIZATIONS`, False returns the raw map. With
            ``target="all"`` each class's map is scaled on its own, as a call per class would.
        input_size : default="fit"
            Network input size for this call, whatever the model was fitted with: (h, w), a
            scale factor, or None for each image's own size.

        Returns
        -------
        ndarray of shape (n, H, W), float32, or list of ndarray
            An array when all maps have the same size, else a list. With ``target="all"``
            each image's maps are one array of shape (n_classes, H, W), equal to the calls
            per class stacked, and the result is (n, n_classes, H, W) when all the images
            have the same size, else a list of them.

        Notes
        -----
        Feature maps are reduced to CAMs as they arrive (see :meth:`explain`), but the
        result holds one float32 map per image (``n_classes`` with "all") at ``size``: with
        ``size="image"`` that is 4 bytes per pixel of every input image and map. For
        thousands of photographs, call this on chunks of images (``gapsvm cam`` works in
        chunks of a few dozen) or ask for ``size="features"``. The network runs once per
        image whatever the chunking: the cache keeps the maps.

        Raises
        ------
        NotLinearError
            The head is not a linear function of the GAP features; the message says why.
        ValueError
            Unknown target class, or ``size`` not one of the two values.
        """
        if size not in ("image", "features"):
            raise ValueError(f"size must be 'image' or 'features', got {size!r}")
        info = self.explain(X, target, input_size=input_size)

        def finish(m: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
            if size == "image":
                m = upsample_cam(m, hw)
            if normalize is not False:
                m = normalize_cam(m, "minmax" if normalize is True else normalize)
            return m

        if info.all_classes:
            return stack_if_same([np.stack([finish(c, hw) for c in m])
                                  for m, hw in zip(info.cams, info.image_hw, strict=True)])
        return stack_if_same([finish(m, hw) for m, hw in zip(info.cams, info.image_hw,
                                                              strict=True)])

    def boxes(
        self,
        X: Any,
        target: Any = None,
        threshold: float | None = None,
        mode: str = "largest",
        input_size: Any = "fit",
    ) -> list[list[Any]]:
        """Bounding boxes of where each image's CAM is at least ``threshold`` of its maximum.

        The CAM of :meth:`explain` is upsampled to the image's own size and passed to
        :func:`gapsvm.boxes.cam_to_boxes`.

        Parameters
        ----------
        X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)
        target : None, label or sequence of labels, default=None
            As in :meth:`cam`: None explains each image's predicted class.
        threshold : float or None, default=None
            Fraction of the map's maximum, in [0, 1]; None is ``box_threshold_`` when
            calibration recorded one, else 0.2 (the CAM paper's rule).
        mode : {"largest", "all"}, default="largest"
            The largest connected region's box, or one box per region (highest peak first).
        input_size : default="fit"
            Network input size for this call, e.g. ``2.0`` for photos with small objects.
            ``"fit"`` is ``box_scales_`` when calibration recorded them (several: the mean of
            the upsampled CAMs), else the size the model was fitted at.

        Returns
        -------
        list of list of Box
            One list per image, in image pixels with exclusive ``x_max`` / ``y_max``; empty
            when the CAM has no positive value.

        Raises
        ------
        NotLinearError
            The head is not linear in the GAP features.
        ValueError
            Unknown target class, ``"all"`` (one class per image here), ``threshold``
            outside [0, 1] or an unknown ``mode``.
        """
        from gapsvm.estimator.box_settings import boxes_of

        if is_all(target):
            raise ValueError("boxes() draws one class per image: give a label, a list of "
                             "labels or None, not 'all' (that is for cam() and explain())")
        return boxes_of(self, X, target, threshold, mode, input_size)

    def detect(
        self,
        X: Any,
        target: Any,
        *,
        scales: Any = DEFAULT_SCALES,
        window: Any = None,
        stride: int = 1,
        nms_iou: float = DEFAULT_NMS_IOU,
        score_threshold: float | None = None,
        max_detections: int | None = 100,
        box_vote: bool = True,
    ) -> list[list[Detection]]:
        """Every instance of ``target`` in each image: scored boxes from sliding windows.

        A window's score is the mean of the class's CAM over the window's feature cells
        plus the intercept, which is exactly the decision value of the window's pooled
        features; an integral image gives every position's score from one forward pass per
        input scale. Greedy non-maximum suppression over all scales and windows leaves the
        detections, box voting moves each box to the score-weighted mean of the windows
        overlapping it, and a second NMS drops duplicates (:mod:`gapsvm.estimator.detection`).

        Parameters
        ----------
        X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)
        target : label
            The class to find (e.g. ``"person"``).
        scales : float, str or sequence, default=DEFAULT_SCALES
            The input pyramid, as scales of each image's own size (``"2,2.5,3"``), by
            default :data:`gapsvm.estimator.detection.DEFAULT_SCALES`. Inputs beyond the
            memory bound are downscaled as everywhere in gapsvm.
        window : str or sequence of (int, int), default=None
            Window shapes in feature cells, height x width (``"8x4"``, ``"8x4,10x5"``); None
            is the size the head was trained at (128x64 at stride 16 gives 8x4).
        stride : int, default=1
            Step between window positions, in cells.
        nms_iou : float, default=0.3
            A window whose IoU with a better-scoring kept one exceeds this is dropped.
        score_threshold : float or None, default=None
            Keep windows scoring at least this; scores are decision values, so 0 keeps what
            the head classifies as ``target``. None keeps the best ``max_detections``.
        max_detections : int or None, default=100
            At most this many detections per image.
        box_vote : bool, default=True
            Move each kept box to the score-weighted mean of the windows overlapping it by
            more than ``nms_iou`` (:func:`gapsvm.core.detection.vote_boxes`), off the grid
            of feature cells, then suppress again the boxes voted onto the same object.
            The score stays the kept window's decision value. False reports the windows
            themselves.

        Returns
        -------
        list of list of Detection
            One list per image, best score first; each :class:`~gapsvm.core.detection.Detection`
            has a box in image pixels (exclusive maxima, as :meth:`boxes`), its score and
            the label.

        Raises
        ------
        NotLinearError
            The head is not linear in the GAP features.
        ValueError
            An unknown or missing target, a window larger than no map, bad options.
        """
        return detect_of(
            self, X, target, scales=scales,
            window=window, stride=stride, nms_iou=nms_iou, score_threshold=score_threshold,
            max_detections=max_detections, box_vote=box_vote,
        ).detections
