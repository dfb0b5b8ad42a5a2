"""How well do class activation maps localise, and are they faithful? ``gapsvm evaluate``.

This module is orchestration only: it takes the boxes read by
:func:`~gapsvm.core.boxes_csv.read_boxes_csv`, runs the model, and hands maps and boxes to the
pure functions of :mod:`gapsvm.core.boxes` and :mod:`gapsvm.core.metrics`; the faithfulness
runs are in :mod:`~gapsvm.workflows.evaluate.faithfulness`, the metrics' summaries and the
printed table in :mod:`~gapsvm.workflows.evaluate.table`.

Every number is reported for the CAM *and* for the baselines of
:data:`~gapsvm.core.metrics.baselines.BASELINES`, which use no model at all:

* ``centre``: a centred Gaussian map (:func:`~gapsvm.core.metrics.center_map`) and, for the
  box metrics, the centred box covering a quarter of the image
  (:func:`~gapsvm.core.metrics.center_box`);
* ``uniform``: a map of ones (its energy in the boxes is exactly their area share; its box is
  the whole image; its "maximum" is the top-left pixel);
* ``random``: smooth random noise with one value per CAM cell
  (:func:`~gapsvm.core.metrics.random_map`, cells of the backbone's stride), seeded for each
  (image, label) pair;
* ``gaussian``: Choe et al.'s centre-Gaussian map, boxed at the threshold like the CAM and
  swept like it by MaxBoxAccV2.

On labelled multi-class folders (each pair's label a class of the model) the report also has
the weakly-supervised localisation protocol, overall and per class: classification accuracy,
GT-known localisation (the true class's box at IoU >= 0.5), top-1 localisation (the predicted
class right *and* its box at IoU >= 0.5) and MaxBoxAccV2 [5]_.

References
----------
.. [1] B. Zhou et al. "Learning Deep Features for Discriminative Localization". CVPR 2016.
.. [2] J. Zhang et al. "Top-down Neural Attention by Excitation Backprop". ECCV 2016.
.. [3] A. Chattopadhay et al. "Grad-CAM++". WACV 2018.
.. [4] V. Petsiuk, A. Das, K. Saenko. "RISE". BMVC 2018.
.. [5] J. Choe et al. "Evaluating Weakly Supervised Object Localization Methods Right".
   CVPR 2020.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gapsvm.core import metrics as M
from gapsvm.core.boxes_csv import Annotation
from gapsvm.core.cam import fuse_cams
from gapsvm.core.decode import read_image
from gapsvm.core.metrics.baselines import BASELINES, BaselineInput, MethodMaps, method_maps
from gapsvm.core.output import output_name, path_inside, safe_label, unique_names, write_png
from gapsvm.core.overlay import evaluation_overlay
from gapsvm.core.sizes import parse_input_size, parse_scales
from gapsvm.estimator.box_settings import box_scales, box_threshold
from gapsvm.estimator.targets import class_index
from gapsvm.network.backbone.registry import get_spec
from gapsvm.utils.checks import check_choice, check_int
from gapsvm.utils.jsonio import write_json
from gapsvm.workflows.evaluate.faithfulness import (
    FAITHFULNESS,
    Faithfulness,
    curves_to_aucs,
    image_scorer,
)
from gapsvm.workflows.evaluate.table import (
    METHODS,
    localisation_values,
    summarise,
    summarise_per_class,
)

__all__ = [
    "METHODS",
    "cam_image",
    "class_indices",
    "class_maps_of",
    "evaluate",
    "parse_sizes",
    "write_report",
]

_MODES = ("largest", "all")


#: A network input of ``evaluate``: a scale of each photo, or a fixed ``(h, w)``.
Size = float | tuple[int, int]


@dataclass(frozen=True)
class _Settings:
    scales: tuple[Size, ...]
    mode: str
    threshold: float
    threshold_source: str
    seed: int
    stride: int  # the backbone's: image pixels per feature cell at scale 1
    faithfulness: Faithfulness

    def cell(self, hw: tuple[int, int]) -> int:
        """Photo pixels per feature cell at the scoring input (the random baseline's)."""
        first = self.scales[0]
        factor = hw[0] / first[0] if isinstance(first, tuple) else 1.0 / first
        return max(1, round(self.stride * factor))


def parse_sizes(sizes: Sequence[Any] | str | float) -> tuple[Size, ...]:
    """Scales (``1``, ``"x2"``, ``"native"``) and fixed sizes (``(224, 224)``), in order."""
    if isinstance(sizes, str | numbers.Real):
        return parse_scales(sizes)
    out: list[Size] = []
    for item in sizes:
        if isinstance(item, tuple | list):
            size = parse_input_size(tuple(item))
        else:
            [size] = parse_scales([item])
        if size not in out:
            out.append(size)
    if not out:
        raise ValueError("no input size given; use e.g. 1 (each photo's own size) or (224, 224)")
    return tuple(out)


@dataclass(frozen=True)
class _Photo:
    """One image's network output, shared by its (image, label) pairs."""

    hw: tuple[int, int]
    class_maps: list[np.ndarray]  # (h', w', k) without intercept, one per scale, float64
    predicted: int  # the head's top class on the first input's GAP vector
    image: np.ndarray | None  # RGB, when overlays or image-space runs need it
    full_probs: np.ndarray | None  # (k,) unmasked probabilities, for image-space runs
    tolerance: float

    @property
    def grid_hw(self) -> tuple[int, int]:
        return self.class_maps[0].shape[:2]


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return float(threshold)


def class_indices(classes: np.ndarray, annotations: Sequence[Annotation]) -> list[int]:
    """Each annotation's class index; every unknown label is an error before any work."""
    indices = []
    for ann in annotations:
        try:
            indices.append(class_index(classes, ann.label))
        except ValueError:
            raise ValueError(
                f"label {ann.label!r} of {ann.filename!r} is not a class of the model "
                f"{[str(c) for c in classes]}"
            ) from None
    return indices


def class_maps_of(extracted: list[Any], j: int, W: np.ndarray) -> list[np.ndarray]:
    """Image ``j``'s every-class maps ``(h', w', k)``, one per network input, in float64."""
    return [np.tensordot(np.asarray(res.maps[j], dtype=np.float64), W.T, axes=([2], [0]))
            for res in extracted]


def cam_image(class_maps: list[np.ndarray], c: int, hw: tuple[int, int]) -> np.ndarray:
    """The CAM of class ``c``: upsampled from each input to the photo, averaged over inputs
    (the map evaluate boxes, and calibration too)."""
    return fuse_cams([cm[:, :, c].astype(np.float32) for cm in class_maps], hw).astype(
        np.float64
    )


def _photo(
    extracted: list[Any], j: int, path: str, W: np.ndarray, need_image: bool,
    faith: Faithfulness, predicted: int,
) -> _Photo:
    class_maps = class_maps_of(extracted, j, W)
    hw = extracted[0].image_hw[j]
    image = read_image(path) if need_image else None
    # Image-space runs compare masked images with the unmasked one passed through the same
    # uncached float32 path, so that "no change" is exactly no change.
    full_probs = (
        None if faith.score_images is None
        else M.scores_to_probabilities(faith.score_images([image]))[0]
    )
    return _Photo(hw, class_maps, predicted, image, full_probs, M.scaled_tolerance(hw))


def _cam_maps(photo: _Photo, c: int, st: _Settings) -> MethodMaps:
    """The CAM of class ``c``: upsampled from each scale to the photo, averaged over scales."""
    image = cam_image(photo.class_maps, c, photo.hw)
    if len(photo.class_maps) == 1:
        cam_grid = photo.class_maps[0][:, :, c]
    else:
        cam_grid = M.pool_to_grid(image, photo.grid_hw)
    return method_maps(image, cam_grid, st.threshold, st.mode)


def _score_pair(
    st: _Settings, photo: _Photo, ann: Annotation, c: int, i: int
) -> tuple[dict[str, Any], MethodMaps]:
    """Every method's values on pair ``i``, and the CAM's maps (for the overlay)."""
    cam = _cam_maps(photo, c, st)
    given = BaselineInput(photo.hw, photo.grid_hw, st.cell(photo.hw), st.threshold, st.mode,
                          np.random.default_rng([st.seed, i]))
    maps = {"cam": cam, **{name: baseline(given) for name, baseline in BASELINES.items()}}
    result: dict[str, Any] = {
        "filename": ann.filename,
        "label": ann.label,
        "csv_lines": ann.lines,
        "image_hw": list(photo.hw),
        "n_gt": len(ann.boxes),
        "area_share": M.box_area_share(photo.hw, ann.boxes),
        "class_score": float(
            photo.class_maps[0][:, :, c].mean() + st.faithfulness.intercepts[c]
        ),
        "predicted": photo.predicted,
        "methods": {},
    }
    for k, (method, mm) in enumerate(maps.items()):
        r = localisation_values(mm, ann.boxes, photo.tolerance)
        # Top-1 localisation needs the class right, whichever method draws the box.
        r["correct"] = photo.predicted == c
        # Each method gets its own, reproducible tie-breaking stream.
        tie_rng = np.random.default_rng([st.seed, i, k])
        r.update(st.faithfulness.of(mm, c, photo.class_maps[0], photo.image, photo.full_probs,
                                    tie_rng))
        result["methods"][method] = r
    result["boxes"] = [list(bx.as_tuple()) for bx in cam.predicted]
    return result, cam


def _write_overlay(out: Path, ann: Annotation, image: np.ndarray, cam: MethodMaps,
                   alpha: float, used: set[str]) -> None:
    """``out/<filename>.<label>.png``: the image's extension is kept, so ``x.jpg`` and
    ``x.png`` do not share one file; ``used`` holds the names taken so far in this run."""
    [name] = unique_names([output_name(ann.filename, safe_label(ann.label))], used)
    target = path_inside(out, name)
    write_png(target, evaluation_overlay(image, cam.image, cam.predicted, ann.boxes, alpha))


def evaluate(
    model: Any,
    annotations: Sequence[Annotation],
    *,
    scales: Sequence[float] | None = None,
    mode: str = "largest",
    threshold: float | None = None,
    threshold_source: str | None = None,
    faithfulness: str = "features",
    n_steps: int = 32,
    image_steps: int = 8,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    alpha: float = 0.5,
    chunk_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Score a model's class activation maps against ground-truth boxes, beside baselines.

    For every (image, label) pair the CAM of that label is computed at each of ``scales``
    (the photo resized by that factor before the network), upsampled to the photo's own size
    and averaged over scales; boxes come from :func:`~gapsvm.core.boxes.cam_to_boxes`. The
    same metrics are computed for the baselines of
    :data:`~gapsvm.core.metrics.baselines.BASELINES`.

    Parameters
    ----------
    model : GapClassifier
        Fitted, with a linear head.
    annotations : sequence of Annotation
        From :func:`~gapsvm.core.boxes_csv.read_boxes_csv`; labels must be model classes
        (compared as text).
    scales : sequence of float or (h, w), optional
        Default: the model's calibrated ``box_scales_`` when recorded, else ``(1.0,)``.
        Network inputs: scales relative to each photo, or fixed ``(h, w)`` sizes such as
        ``(224, 224)`` (the size a head was trained at); several give a multi-scale CAM (the
        mean of the CAMs upsampled to the photo). The first input's feature maps give the
        predicted class, the feature-cell faithfulness metrics and the image-space runs.
    mode : {"largest", "all"}, default "largest"
        Boxes drawn and used for box recall and precision (IoU >= 0.5): the largest
        component's box, or one box per component. IoU and CorLoc always use the largest.
    threshold : float, optional
        Box threshold as a fraction of the map's maximum; default the model's calibrated
        ``box_threshold_`` when recorded, else 0.2
        (:func:`~gapsvm.estimator.box_settings.box_threshold`).
    threshold_source : str, optional
        Where ``threshold`` came from, for the report (e.g. ``"calibrated on cal.csv (40
        images)"``); default ``"given"`` for a given threshold, else the recorded source.
    faithfulness : {"features", "image", "none"}, default "features"
        See :mod:`gapsvm.workflows.evaluate.faithfulness`.
    n_steps : int, default 32
        Deletion / insertion steps on feature cells.
    image_steps : int, default 8
        Deletion / insertion steps with ``faithfulness="image"``.
    seed : int, default 0
        Seed of the random baseline and of the tie-breaking in the deletion order.
    out_dir : path, optional
        Where to write one overlay PNG per pair (``overlays/<image>.<label>.png``, with the
        image's own extension and folders: ``overlays/sub/x.jpg.person.png``; see
        :func:`~gapsvm.core.output.output_name`).
    alpha : float, default 0.5
        Heat-map opacity of the overlays.
    chunk_size : int, default 8
        Images whose feature maps are held in memory at once.
    progress : callable, optional
        Called with the number of images just finished.

    Returns
    -------
    dict
        ``settings``, ``counts`` (images, pairs, boxes), ``area_share`` (mean share of each
        image covered by its boxes: the chance level of energy-in-box), ``tolerance_px``
        (pointing-game tolerance per image size), ``summary`` (per method, one entry per row
        of :data:`~gapsvm.workflows.evaluate.table.ROWS`: pointing game with the scaled
        tolerance and inside a box, energy in box, mean IoU, CorLoc, box recall and
        precision, classification accuracy, GT-known and top-1 localisation, MaxBoxAccV2 with
        its box accuracy and best threshold per IoU, and the faithfulness metrics),
        ``per_class`` (label -> method -> the per-class rows) and ``per_image`` (the same
        per pair, with the predicted class and the CAM's boxes). Undefined values are NaN.

    Raises
    ------
    NotLinearError
        The head is not linear in the GAP features.
    ValueError
        Invalid parameters, an empty annotation list, or a label that is not a model class.
    ImageReadError
        An image became unreadable after the CSV was read (overlays already written stay).
    """
    recorded = box_scales(model)
    scales = parse_sizes(scales if scales is not None else recorded or (1.0,))
    check_choice(mode, "mode", _MODES)
    threshold, source = box_threshold(model, threshold)
    threshold = _check_threshold(threshold)
    source = threshold_source or source
    check_choice(faithfulness, "faithfulness", FAITHFULNESS)
    for name, v in (("n_steps", n_steps), ("image_steps", image_steps),
                    ("chunk_size", chunk_size)):
        check_int(v, name)
    if not annotations:
        raise ValueError("no annotations to evaluate")
    W, b = model.head_.cam_weights()
    targets = class_indices(model.classes_, annotations)
    out = None if out_dir is None else Path(out_dir) / "overlays"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    faith = Faithfulness(
        faithfulness,
        n_steps if faithfulness == "features" else image_steps,
        b,
        image_scorer(model, scales[0]) if faithfulness == "image" else None,
    )
    st = _Settings(scales, mode, threshold, source, seed, get_spec(model.backbone).stride, faith)

    by_file: dict[str, list[int]] = {}
    for i, ann in enumerate(annotations):
        by_file.setdefault(ann.path, []).append(i)
    files = list(by_file)
    per_pair: list[dict[str, Any]] = [{}] * len(annotations)
    tolerances: dict[str, float] = {}
    need_image = out is not None or faithfulness == "image"
    used: set[str] = set()
    for start in range(0, len(files), chunk_size):
        chunk = files[start : start + chunk_size]
        extracted = [model.extract(chunk, maps=True, input_size=s) for s in scales]
        # The head's own prediction on the GAP vectors, as ``predict`` at this input gives.
        top = _top_classes(model, extracted[0].gap)
        for j, path in enumerate(chunk):
            photo = _photo(extracted, j, path, W, need_image, st.faithfulness, top[j])
            tolerances[f"{photo.hw[1]}x{photo.hw[0]}"] = photo.tolerance
            for i in by_file[path]:
                per_pair[i], cam = _score_pair(st, photo, annotations[i], targets[i], i)
                if out is not None:
                    _write_overlay(out, annotations[i], photo.image, cam, alpha, used)
        if progress is not None:
            progress(len(chunk))
    return _report(st, per_pair, len(files), [str(c) for c in model.classes_], tolerances)


def _top_classes(model: Any, gap: np.ndarray) -> list[int]:
    """Index in ``model.classes_`` of the head's predicted class for each GAP vector."""
    labels = model.head_.predict(np.asarray(gap, dtype=np.float32))
    return [class_index(model.classes_, label) for label in labels]


def _report(
    st: _Settings, pairs: list[dict[str, Any]], n_images: int, classes: list[str],
    tolerances: dict[str, float],
) -> dict[str, Any]:
    n_gt = sum(p["n_gt"] for p in pairs)
    faith = st.faithfulness
    summary = summarise(pairs, n_gt, faith.kind != "none")
    per_class = summarise_per_class(pairs)
    curves_to_aucs(pairs)
    for pair in pairs:  # the sweeps are summarised; 100 IoUs per method stay out of the JSON
        for r in pair["methods"].values():
            r.pop("iou_curve", None)
        pair["predicted"] = classes[pair["predicted"]]
    return {
        "settings": {
            "scales": [list(s) if isinstance(s, tuple) else s for s in st.scales],
            "mode": st.mode,
            "threshold": st.threshold,
            "threshold_source": st.threshold_source,
            "faithfulness": faith.kind,
            "n_steps": faith.n_steps,
            "seed": st.seed,
            "classes": classes,
            "probabilities": "sigmoid(class score)" if len(faith.intercepts) == 2
            else "softmax(class scores)",
            "maxboxacc": {"thresholds": "0, 0.01, ..., 0.99 of the min-max normalised map",
                          "ious": list(M.MAXBOXACC_IOUS), "box": "largest component"},
        },
        "counts": {"images": n_images, "pairs": len(pairs), "gt_boxes": n_gt},
        "area_share": float(np.mean([p["area_share"] for p in pairs])),
        "tolerance_px": tolerances,
        "summary": summary,
        "per_class": per_class,
        "per_image": pairs,
    }


def write_report(report: dict[str, Any], path: str | os.PathLike) -> None:
    """Write :func:`evaluate`'s report as strict JSON (NaN as null), atomically.

    Parameters
    ----------
    report : dict
        As returned by :func:`evaluate`.
    path : str or path-like
        The JSON file.
    """
    write_json(report, path)
