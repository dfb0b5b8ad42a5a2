"""Hard-negative mining: the bootstrapping of Dalal and Triggs (and Felzenszwalb et al.).

:func:`mine_hard_negatives` scans images with the current head, adds the windows it scores
highest as negatives, refits, and repeats. A window's vector is the exact GAP of its feature
cells (:func:`~gapsvm.core.detection.window_means` over the maps, which come through the
cache), so its score is the one ``detect`` gives that window. The images hold no instance of
the target (for a head trained on INRIA's 128x64 crops, the person-free crops of
``persons/train/not_person``, scanned at several scales, :data:`MINING_SCALES`), or they do
and their boxes are given, and windows overlapping a box are never mined.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from gapsvm.core import validation as val
from gapsvm.core.boxes import Box, box_array, iou_matrix
from gapsvm.core.detection import nms, parse_windows, window_boxes, window_means
from gapsvm.core.scan import list_images, no_images_message
from gapsvm.core.sizes import format_scales, parse_scales
from gapsvm.estimator.classifier import GapClassifier
from gapsvm.estimator.detection import DEFAULT_NMS_IOU, model_window
from gapsvm.estimator.targets import class_index
from gapsvm.utils.checks import check_int

__all__ = [
    "DEFAULT_PER_IMAGE",
    "DEFAULT_ROUNDS",
    "MARGIN",
    "MINING_SCALES",
    "MiningReport",
    "MiningRound",
    "mine_hard_negatives",
]

#: Input scales the negative images are scanned at: scales of each image's own size. The
#: default suits 128x64 crops, whose own size holds a single 8x4 window.
MINING_SCALES: tuple[float, ...] = (2.0, 3.0, 4.0)
#: Rounds of mining and refitting.
DEFAULT_ROUNDS = 2
#: Windows added per negative image and round, at most (after NMS).
DEFAULT_PER_IMAGE = 5
#: A window is a hard negative when its decision value is above this: inside the SVM's
#: margin (-1), where a hinge loss still learns from it.
MARGIN = -1.0
#: Windows kept per image, scale and window shape before NMS, to bound memory on photos (a
#: lower one is chosen only when hundreds of better ones are all suppressed).
_MAX_CANDIDATES = 500
#: Negative images whose maps are in memory at once (maps are large; the cache keeps them).
_CHUNK = 32
#: The same for images with boxes, whose windows are all kept until their boxes are known.
_CHUNK_WITH_BOXES = 4


@dataclass(frozen=True)
class MiningRound:
    """The windows one round of :func:`mine_hard_negatives` added as negatives, best first
    per image: their pooled ``vectors`` (n, channels), ``scores`` (decision values before
    the refit), the index of the negative image each came from (``images``), the input
    ``scales`` and the ``boxes`` (n, 4) in image pixels (exclusive maxima). A window mined
    in an earlier round is not added again."""

    round: int
    vectors: np.ndarray
    scores: np.ndarray
    images: np.ndarray
    scales: np.ndarray
    boxes: np.ndarray

    @property
    def best_score(self) -> float | None:
        """The highest decision value among them (None when none)."""
        return float(self.scores.max()) if len(self.scores) else None


@dataclass
class MiningReport:
    """What :func:`mine_hard_negatives` did, round by round.

    ``source`` names the negative images (their folder, or how many were given); of
    ``n_images``, ``n_unreadable`` could not be read (skipped). ``n_training`` counts the
    training vectors before mining; ``rounds`` holds the rounds run, fewer than
    ``rounds_asked`` when one found no window above ``margin``. The rest are the options.
    """

    source: str
    target: Any
    negative_label: Any
    n_images: int
    n_unreadable: int
    n_training: int
    scales: tuple[float, ...]
    windows: tuple[tuple[int, int], ...]
    per_image: int
    margin: float
    rounds_asked: int
    rounds: list[MiningRound] = field(default_factory=list)

    @property
    def n_added(self) -> int:
        """Hard negatives added over every round."""
        return sum(len(r.scores) for r in self.rounds)

    def as_info(self) -> dict[str, Any]:
        """The ``training_info_["hard_negatives"]`` entry: plain, JSON-ready values."""
        return {
            "source": self.source, "target": str(self.target),
            "negative_label": str(self.negative_label), "n_images": self.n_images,
            "n_unreadable": self.n_unreadable, "scales": format_scales(self.scales),
            "windows": ",".join(f"{h}x{w}" for h, w in self.windows),
            "per_image": self.per_image, "margin": self.margin,
            "rounds_asked": self.rounds_asked, "rounds_run": len(self.rounds),
            "added_per_round": [len(r.scores) for r in self.rounds], "n_added": self.n_added,
            "n_training_before": self.n_training,
            "note": "cross-validation figures, if any, are of the head before mining",
        }


@dataclass
class _Candidates:
    """One image's windows above the margin, at one scale and window shape."""

    keys: list[tuple[int, float, int, int]]  # (image, scale, shape, position)
    positions: np.ndarray
    scores: np.ndarray
    vectors: np.ndarray
    grid_hw: tuple[int, int]
    window: tuple[int, int]


def _mining_classes(model: Any, target: Any, negative_label: Any) -> tuple[int, Any]:
    """The target's column in ``class_scores`` and the label mined windows get."""
    classes = model.classes_
    if target is None:
        if len(classes) != 2:
            raise ValueError(f"give target= (one of {[str(c) for c in classes]}): a model "
                             "with more than two classes has no default target")
        target = classes[1]
    c = class_index(classes, target)
    if negative_label is None:
        if len(classes) != 2:
            raise ValueError("give negative_label=: a model with more than two classes has "
                             "no single 'other' class for the mined windows")
        negative_label = classes[1 - c]
    neg = classes[class_index(classes, negative_label)]
    if class_index(classes, neg) == c:
        raise ValueError(f"negative_label {negative_label!r} is the target itself")
    return c, neg.item() if isinstance(neg, np.generic) else neg


def _negative_sources(negatives: Any) -> tuple[list[Any], str]:
    """The negative images and how the training record names them."""
    if isinstance(negatives, str | os.PathLike) and os.path.isdir(negatives):
        problems: list[Any] = []
        paths = list_images(negatives, problems)
        if not paths:
            raise ValueError(no_images_message(negatives, problems))
        return paths, os.fspath(negatives)
    sources, _ = val.check_images(negatives)
    return sources, f"{len(sources)} image(s) given"


@dataclass(frozen=True)
class _Options:
    """What one mining scan looks for (the arguments of :func:`mine_hard_negatives`)."""

    c: int
    windows: tuple[tuple[int, int], ...]
    scales: tuple[float, ...]
    per_image: int
    nms_iou: float
    margin: float
    #: Per image, the boxes (m, 4) no mined window may overlap (IoU >= max_iou), or None.
    avoid: tuple[np.ndarray | None, ...] | None
    max_iou: float

    def avoid_of(self, image: int) -> np.ndarray | None:
        return None if self.avoid is None else self.avoid[image]


def _avoid_arrays(avoid_boxes: Sequence[Sequence[Box]] | None, n: int
                  ) -> tuple[np.ndarray | None, ...] | None:
    """``avoid_boxes`` as one (m, 4) integer array per image, checked against ``n`` images."""
    if avoid_boxes is None:
        return None
    if len(avoid_boxes) != n:
        raise ValueError(f"avoid_boxes has {len(avoid_boxes)} list(s) of boxes for {n} "
                         "image(s): give one list per image, in the images' order")
    return tuple(box_array(boxes) for boxes in avoid_boxes)


def _scan(model: Any, maps: np.ndarray, image: int, scale: float, opt: _Options,
          exclude: set) -> list[_Candidates]:
    """Every window of one image's maps: pooled exactly, scored by the head, the best kept
    (all of them above the margin in an image with boxes: the best may lie on its boxes)."""
    cap = _MAX_CANDIDATES if opt.avoid_of(image) is None else None
    out = []
    for s, window in enumerate(opt.windows):
        pooled = window_means(maps, window)
        pooled = pooled.reshape(-1, pooled.shape[-1])
        if not len(pooled):
            continue
        scores = model.class_scores(pooled)[:, opt.c]
        keep = np.flatnonzero(scores > opt.margin)
        if exclude:
            keep = np.array([k for k in keep if (image, scale, s, int(k)) not in exclude], int)
        keep = keep[np.argsort(-scores[keep], kind="stable")[:cap]]
        out.append(_Candidates([(image, scale, s, int(k)) for k in keep], keep, scores[keep],
                               pooled[keep].astype(np.float32), maps.shape[:2], window))
    return out


def _select(parts: list[_Candidates], image_hw: tuple[int, int], opt: _Options,
            avoid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple]]:
    """An image's hard negatives: the windows clear of ``avoid``, NMS over every scale, the
    best first."""
    parts = [p for p in parts if len(p.positions)]
    if not parts:
        return np.zeros((0, 0), np.float32), np.zeros(0), np.zeros((0, 4), int), []
    boxes = np.concatenate([window_boxes(p.grid_hw, p.window, 1, image_hw)[p.positions]
                            for p in parts])
    scores = np.concatenate([p.scores for p in parts])
    clear = np.arange(len(scores))
    if avoid is not None and len(avoid):
        clear = np.flatnonzero(iou_matrix(boxes, avoid).max(axis=1) < opt.max_iou)
    keep = clear[nms(boxes[clear], scores[clear], opt.nms_iou, opt.per_image)]
    keys = [k for p in parts for k in p.keys]
    return (np.concatenate([p.vectors for p in parts])[keep], scores[keep], boxes[keep],
            [keys[k] for k in keep])


def _mine_round(model: Any, sources: list[Any], opt: _Options, exclude: set,
                chunk: int) -> tuple[list, int]:
    """One scan of every negative image with ``model``'s head: per image that gave hard
    negatives, its (vectors, scores, boxes, keys); and the count of unreadable images."""
    found_all, unreadable = [], 0
    for start in range(0, len(sources), chunk):
        part = sources[start:start + chunk]
        found: list[list[_Candidates]] = [[] for _ in part]
        image_hw: list[Any] = [None] * len(part)
        for s in opt.scales:
            res = model.extract(
                part, maps=True, input_size=s, on_error="skip",
                map_fn=lambda i, m, s=s, start=start: _scan(model, m, start + i, s, opt,
                                                            exclude),
            )
            for i, got in enumerate(res.maps):
                if got is not None:
                    found[i].extend(got)
                    image_hw[i] = res.image_hw[i]
        for i, parts in enumerate(found):
            if image_hw[i] is None:
                unreadable += 1
                continue
            picked = _select(parts, image_hw[i], opt, opt.avoid_of(start + i))
            if len(picked[3]):
                found_all.append(picked)
    return found_all, unreadable


def _refit(model: Any, X: np.ndarray, y: np.ndarray, mined: list[np.ndarray],
           negative_label: Any) -> Any:
    """A clone of ``model`` fitted on the training vectors plus every mined negative."""
    extra = np.concatenate(mined).astype(X.dtype)
    y_all = np.concatenate([y, np.full(len(extra), negative_label, dtype=y.dtype)])
    return clone(model).fit_features(np.concatenate([X, extra]), y_all, model.feature_meta_)


def mine_hard_negatives(
    model: GapClassifier, features: np.ndarray, labels: Any, negatives: Any, *,
    target: Any = None, negative_label: Any = None, rounds: int = DEFAULT_ROUNDS,
    per_image: int = DEFAULT_PER_IMAGE, scales: Any = MINING_SCALES, window: Any = None,
    nms_iou: float = DEFAULT_NMS_IOU, margin: float = MARGIN,
    avoid_boxes: Sequence[Sequence[Box]] | None = None, max_iou: float = 0.1,
    log: Callable[[str], None] = print,
) -> tuple[GapClassifier, MiningReport]:
    """Hard-negative mining: add the windows a head wrongly scores highest, refit, repeat.

    Each round scans every negative image at every scale with the current head: each
    window's pooled vector is the mean of the feature maps over its cells (the exact GAP
    of the window), scored as the head scores a GAP vector. Per image, the windows above
    ``margin`` go through greedy NMS (so that the mined windows differ) and the best
    ``per_image`` are added as negatives; then a clone of ``model`` is fitted on
    ``features`` plus every negative mined so far. A window mined once is not added again.
    Images that do hold instances can be mined too, given their boxes (``avoid_boxes``): a
    window overlapping one of them is never mined (how :func:`train_from_boxes
    <gapsvm.workflows.detection.boxes.train_from_boxes>` mines its own photos).

    Parameters
    ----------
    model : GapClassifier
        Fitted on ``features`` and ``labels`` (as ``gapsvm train`` fits it); not modified.
    features : ndarray of shape (n, n_channels)
        The training GAP vectors.
    labels : array-like of shape (n,)
    negatives : path or images
        A folder of images holding no instance of ``target`` (searched recursively), or
        the images themselves (paths or RGB arrays). For a person model trained on INRIA
        crops, ``persons/train/not_person``. With ``avoid_boxes``, images whose instances
        are boxed.
    target : label, default=None
        The class mined against; None is the second class of a binary model (its decision
        value's positive side).
    negative_label : label, default=None
        The label mined windows get; None is the other class of a binary model.
    rounds : int, default=DEFAULT_ROUNDS
        Mining rounds; mining stops early when a round finds nothing above ``margin``.
    per_image : int, default=DEFAULT_PER_IMAGE
        Windows added per image and round, at most.
    scales : float, str or sequence, default=MINING_SCALES
        Input scales of each negative image's own size (``"2,3,4"``).
    window : str or sequence of (int, int), default=None
        Window shapes in feature cells; None is the size the head was trained at, as in
        ``detect``.
    nms_iou : float, default=DEFAULT_NMS_IOU
        The NMS overlap among an image's mined windows, over all scales.
    margin : float, default=MARGIN
        Only windows whose decision value for ``target`` exceeds this are mined.
    avoid_boxes : sequence of sequences of Box, default=None
        One list of boxes per image of ``negatives`` (given as a sequence, in its order),
        in image pixels: windows whose IoU with any of them is ``max_iou`` or more are not
        mined. None: the images hold no instance.
    max_iou : float, default=0.1
        See ``avoid_boxes``.
    log : callable, default=print

    Returns
    -------
    model : GapClassifier
        The refit model, its ``training_info_`` copied from ``model``'s with a
        ``"hard_negatives"`` entry (:meth:`MiningReport.as_info`); ``model`` itself when no
        window was mined (a copy, with the entry all the same).
    report : MiningReport

    Raises
    ------
    ValueError
        An unfitted model, a target or label that is not a class, a multi-class model
        without ``target`` and ``negative_label``, bad options, or a folder without images.
    """
    check_is_fitted(model)
    X = np.asarray(features)
    y = val.check_labels(labels, len(X), min_classes=2)
    c, neg = _mining_classes(model, target, negative_label)
    windows = parse_windows(window) if window is not None else (model_window(model),)
    pyramid = parse_scales(scales)
    val.check_unit_interval(nms_iou, "nms_iou")
    val.check_unit_interval(max_iou, "max_iou")
    rounds, per_image = check_int(rounds, "rounds"), check_int(per_image, "per_image")
    sources, source = _negative_sources(negatives)
    opt = _Options(c, windows, pyramid, per_image, nms_iou, float(margin),
                   _avoid_arrays(avoid_boxes, len(sources)), max_iou)
    report = MiningReport(source, model.classes_[c], neg, len(sources), 0, len(X), pyramid,
                          windows, per_image, float(margin), rounds)
    mined: list[np.ndarray] = []
    seen: set = set()
    current = model
    for r in range(1, rounds + 1):
        found, report.n_unreadable = _mine_round(
            current, sources, opt, seen, _CHUNK if opt.avoid is None else _CHUNK_WITH_BOXES)
        keys = [k for f in found for k in f[3]]
        report.rounds.append(MiningRound(
            r, np.concatenate([f[0] for f in found]) if found else np.zeros((0, X.shape[1])),
            np.concatenate([f[1] for f in found]) if found else np.zeros(0),
            np.array([k[0] for k in keys], int), np.array([k[1] for k in keys], float),
            np.concatenate([f[2] for f in found]) if found else np.zeros((0, 4), int)))
        if not keys:
            log(f"mining round {r}: no window of {len(sources)} negative image(s) scores "
                f"above {margin}; stopping")
            break
        mined.append(report.rounds[-1].vectors)
        seen.update(keys)
        current = _refit(model, X, y, mined, neg)
        log(f"mining round {r}: {len(keys)} hard negative(s) from {len(found)} of "
            f"{len(sources)} image(s), best score {report.rounds[-1].best_score:.3f}; refit "
            f"on {len(X)} + {sum(len(v) for v in mined)} vectors")
    if current is model:
        current = copy.deepcopy(model)
    current.training_info_ = {**(getattr(model, "training_info_", None) or {}),
                              "hard_negatives": report.as_info()}
    return current, report
