"""Box supervision: a head trained on crops cut from boxed photos, for a user who has boxes.

:func:`train_from_boxes` cuts positive crops from the boxes and negative crops from random
windows of similar sizes that overlap no box, trains the same head on them, then mines the
photos' own box-free windows that the head scores highest (:func:`~gapsvm.workflows.
detection.mining.mine_hard_negatives` with the boxes to avoid), and says so in
``training_info_``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gapsvm.core import validation as val
from gapsvm.core.boxes import Box, iou
from gapsvm.core.boxes_csv import read_boxes_csv
from gapsvm.core.cache import PREPROCESS_VERSION
from gapsvm.core.decode import read_image
from gapsvm.core.sizes import parse_input_size
from gapsvm.estimator.classifier import GapClassifier
from gapsvm.estimator.detection import DEFAULT_SCALES
from gapsvm.network.features_file import image_keys
from gapsvm.utils.checks import check_int
from gapsvm.workflows.detection.mining import (
    DEFAULT_PER_IMAGE,
    DEFAULT_ROUNDS,
    mine_hard_negatives,
)

__all__ = ["DEFAULT_NEGATIVES_PER_IMAGE", "negative_windows", "train_from_boxes"]

#: Negative crops cut per photo by :func:`train_from_boxes`.
DEFAULT_NEGATIVES_PER_IMAGE = 20


def negative_windows(image_hw: tuple[int, int], boxes: Sequence[Box], n: int,
                     rng: np.random.Generator, *, max_iou: float = 0.1,
                     tries_per_window: int = 50) -> list[Box]:
    """Random windows of an image, shaped like its boxes, that overlap none of them.

    Each window copies the height and width of one of ``boxes`` (an image's boxes, chosen
    at random), scaled by a factor between 0.8 and 1.25 and cut to the image, at a
    uniformly random position; it is kept when its IoU with every box is below
    ``max_iou``. After ``tries_per_window`` draws per wanted window it gives up, so a
    crowded image yields fewer than ``n``.

    Returns
    -------
    list of Box
        At most ``n`` windows (exclusive maxima, inside the ``(H, W)`` image).
    """
    H, W = val.check_image_hw(image_hw)
    check_int(n, "n", minimum=0)
    if not boxes:
        raise ValueError("negative windows copy the shapes of the image's boxes: none given")
    out: list[Box] = []
    for _ in range(n * tries_per_window):
        if len(out) == n:
            break
        shape = boxes[int(rng.integers(len(boxes)))]
        f = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
        h = int(min(H, max(1, round(shape.height * f))))
        w = int(min(W, max(1, round(shape.width * f))))
        x0, y0 = int(rng.integers(W - w + 1)), int(rng.integers(H - h + 1))
        cand = Box(x0, y0, x0 + w, y0 + h)
        if all(iou(cand, b) < max_iou for b in boxes):
            out.append(cand)
    return out


def _crop(image: np.ndarray, box: Box) -> np.ndarray:
    return np.ascontiguousarray(image[box.y_min:box.y_max, box.x_min:box.x_max])


def _photos(boxes_csv: Any, images_dir: Any, filenames: Iterable[str] | None
            ) -> dict[str, list[tuple[str, list[Box]]]]:
    """Each photo's path and its (label, boxes), in the CSV's order, optionally a subset."""
    anns = read_boxes_csv(boxes_csv, images_dir)
    wanted = None if filenames is None else {Path(f).as_posix() for f in filenames}
    unknown = (wanted or set()) - {Path(a.filename).as_posix() for a in anns}
    if unknown:
        raise ValueError(f"{len(unknown)} file(s) have no box in {os.fspath(boxes_csv)}: "
                         f"{sorted(unknown)[:5]}")
    photos: dict[str, list[tuple[str, list[Box]]]] = {}
    for a in anns:
        if wanted is None or Path(a.filename).as_posix() in wanted:
            photos.setdefault(a.path, []).append((a.label, a.boxes))
    return photos


def train_from_boxes(
    boxes_csv: str | os.PathLike, images_dir: str | os.PathLike, *, classifier: Any = None,
    input_size: Any = (128, 64), negatives_per_image: int = DEFAULT_NEGATIVES_PER_IMAGE,
    negative_label: str | None = None, max_iou: float = 0.1,
    filenames: Iterable[str] | None = None, seed: int = 0,
    mining_rounds: int = DEFAULT_ROUNDS, mining_scales: Any = DEFAULT_SCALES,
    mining_window: Any = None, mining_per_image: int = DEFAULT_PER_IMAGE,
    log: Callable[[str], None] = print, **model_params: Any,
) -> GapClassifier:
    """Box supervision: a head trained on crops cut from boxed photos.

    Positives are the boxes' pixels, labelled with their CSV label; negatives are
    ``negatives_per_image`` random windows per photo shaped like its boxes and overlapping
    none of them (IoU below ``max_iou``, :func:`negative_windows`). Every crop is resized
    to ``input_size`` by the model, as the training crops of a crop-trained head are. Then,
    for ``mining_rounds``, the photos are scanned as ``detect`` scans them and the windows
    overlapping no box (IoU below ``max_iou``) that the head scores highest are added as
    negatives, and the head refit (:func:`~gapsvm.workflows.detection.mining.
    mine_hard_negatives`): random windows are mostly easy, the mined ones are the
    background the detector would otherwise report.

    Parameters
    ----------
    boxes_csv, images_dir : path
        A boxes CSV (:func:`gapsvm.core.boxes_csv.read_boxes_csv`) and its images' folder.
    classifier : estimator, default=None
        The head (None: ``LinearSVC()``).
    input_size : default=(128, 64)
        The network input the crops are resized to; 128x64 is INRIA's window, 8x4 cells.
    negatives_per_image : int, default=DEFAULT_NEGATIVES_PER_IMAGE
    max_iou : float, default=0.1
    negative_label : str, default=None
        The negatives' label; None is ``not_<label>`` when the CSV has one label (so a
        person CSV gives the classes of INRIA's folders), else ``background``.
    filenames : iterable of str, optional
        Use only these photos (as the CSV spells them), e.g. a training half.
    seed : int, default=0
        Seeds the negative windows.
    mining_rounds : int, default=DEFAULT_ROUNDS
        Rounds of mining in the photos; 0 for none. Needs a single label in the CSV (the
        mined windows are negatives of that label).
    mining_scales : float, str or sequence, default=DEFAULT_SCALES
        The input scales of the photos scanned, as ``detect``'s ``scales``.
    mining_window : str or sequence of (int, int), default=None
        Window shapes in feature cells, as ``detect``'s ``window`` (None: the crops' input
        size in cells).
    mining_per_image : int, default=DEFAULT_PER_IMAGE
        Windows added per photo and round, at most.
    log : callable, default=print
    **model_params
        Other :class:`GapClassifier` parameters (``weights``, ``cache_dir``, ...).

    Returns
    -------
    GapClassifier
        Fitted; ``training_info_["supervision"]`` says it is box-supervised, with the crop
        counts, ``training_info_["hard_negatives"]`` records the mining (when run), and
        ``train_keys`` hold the photos' content keys (``gapsvm report`` marks them as
        training images).

    Raises
    ------
    BoxesCSVError, FileNotFoundError
        An invalid CSV or a missing folder.
    ValueError
        A name in ``filenames`` without boxes, a single class of crops, or mining asked
        for a CSV with several labels.
    """
    check_int(negatives_per_image, "negatives_per_image", minimum=0)
    check_int(mining_rounds, "mining_rounds", minimum=0)
    val.check_unit_interval(max_iou, "max_iou")
    photos = _photos(boxes_csv, images_dir, filenames)
    labels_in_csv = sorted({label for parts in photos.values() for label, _ in parts})
    if mining_rounds and len(labels_in_csv) != 1:
        raise ValueError(f"mining needs one label in {os.fspath(boxes_csv)}, which has "
                         f"{len(labels_in_csv)} ({labels_in_csv[:5]}): pass mining_rounds=0 "
                         "(--mining-rounds 0)")
    if negative_label is None:
        negative_label = (f"not_{labels_in_csv[0]}" if len(labels_in_csv) == 1
                          else "background")
    rng = np.random.default_rng(seed)
    crops: list[np.ndarray] = []
    y: list[str] = []
    for path, parts in photos.items():
        image = read_image(path)
        every_box = [b for _, boxes in parts for b in boxes]
        for label, boxes in parts:
            crops += [_crop(image, b) for b in boxes]
            y += [label] * len(boxes)
        negs = negative_windows(image.shape[:2], every_box, negatives_per_image, rng,
                                max_iou=max_iou)
        crops += [_crop(image, b) for b in negs]
        y += [negative_label] * len(negs)
    n_pos = sum(label != negative_label for label in y)
    log(f"{len(photos)} photo(s): {n_pos} box crop(s), {len(y) - n_pos} negative crop(s)")
    model = GapClassifier(classifier, input_size=parse_input_size(input_size), **model_params)
    model.fit(crops, np.array(y))
    model.training_info_ = {
        "supervision": f"box-supervised: crops of the boxes in {os.path.basename(boxes_csv)} "
                       f"and random windows with IoU < {max_iou} with every box",
        "boxes_csv": os.path.basename(boxes_csv), "n_photos": len(photos),
        "n_images": len(y), "n_positives": n_pos, "n_negatives": len(y) - n_pos,
        "negatives_per_image": negatives_per_image, "negative_max_iou": max_iou,
        "seed": seed, "classifier": repr(model.classifier),
        "train_keys": sorted({k for k in image_keys(list(photos)) if k is not None}),
        "train_keys_preprocess_version": PREPROCESS_VERSION,
    }
    if not mining_rounds:
        return model
    mined, _ = mine_hard_negatives(
        model, model.transform_features(crops), np.array(y), list(photos),
        target=labels_in_csv[0], negative_label=negative_label, rounds=mining_rounds,
        per_image=mining_per_image, scales=mining_scales, window=mining_window,
        avoid_boxes=[[b for _, boxes in parts for b in boxes] for parts in photos.values()],
        max_iou=max_iou, log=log,
    )
    return mined
