"""Running ``gapsvm evaluate``: CAMs and baselines of every (image, label) pair, scored."""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gapsvm.core import metrics as M
from gapsvm.core.boxes import Box, cam_to_boxes
from gapsvm.core.boxes_csv import (
    Annotation,
)
from gapsvm.core.cam import upsample_cam
from gapsvm.core.decode import read_image
from gapsvm.core.output import safe_label, write_png
from gapsvm.core.overlay import evaluation_overlay
from gapsvm.core.sizes import parse_scales
from gapsvm.utils.atomic import atomic_write

__all__ = [
    "METHODS",
    "evaluate",
    "format_table",
    "write_report",
]


#: The map under test and its three model-free baselines, in table order.
METHODS = ("cam", "centre", "uniform", "random")


_FAITHFULNESS = ("features", "image", "none")


# RISE's insertion canvas: a Gaussian blur with an 11 px kernel and sigma 5.
_BLUR_KSIZE, _BLUR_SIGMA = 11, 5.0


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """Class scores ``(..., k)`` -> positive scores: sigmoid for two classes, else softmax."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape[-1] == 2:
        # Two classes: s_0 = -s_1, so sigmoid(s_c) is the logistic reading of the decision
        # value and the two probabilities sum to one.
        return 0.5 * (1.0 + np.tanh(0.5 * s))  # sigmoid without overflow warnings
    z = s - s.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _to_grid(image_map: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Average an image-resolution map over the pixels of each feature cell."""
    h, w = grid_hw
    if image_map.shape == (h, w):
        return np.asarray(image_map, dtype=np.float64)
    return cv2.resize(
        np.asarray(image_map, dtype=np.float32), (w, h), interpolation=cv2.INTER_AREA
    ).astype(np.float64)


def _unit_weights(saliency: np.ndarray) -> np.ndarray:
    """An explanation as mask weights in [0, 1]: positive part divided by its maximum."""
    pos = np.maximum(np.asarray(saliency, dtype=np.float64), 0.0)
    peak = pos.max()
    return pos / peak if peak > 0 else pos


@dataclass
class _MethodMaps:
    image: np.ndarray  # (H, W) at image resolution
    grid: np.ndarray  # (h', w') on the scoring scale's feature grid
    largest: list[Box]
    predicted: list[Box]


def _localisation(mm: _MethodMaps, gt: list[Box], tolerance: float) -> dict[str, Any]:
    return {
        "hit": M.pointing_game(mm.image, gt, tolerance),
        "hit_inside": M.pointing_game(mm.image, gt, 0.0),
        "energy": M.energy_in_box(mm.image, gt),
        "iou": M.best_iou(mm.largest[0] if mm.largest else None, gt),
        "n_pred": len(mm.predicted),
        "n_matched": len(M.match_boxes(mm.predicted, gt, 0.5)),
    }


def _feature_faithfulness(
    class_maps: np.ndarray, b: np.ndarray, c: int, saliency: np.ndarray, n_steps: int, rng: Any
) -> dict[str, Any]:
    full = _probabilities(M.linear_gap_scores(class_maps, b, np.ones(saliency.shape)))[c]
    masked = _probabilities(M.linear_gap_scores(class_maps, b, _unit_weights(saliency)))[c]
    schedule = M.deletion_insertion_orders(saliency, n_steps, rng=rng)
    deletion, insertion = M.linear_gap_curves(class_maps, b, schedule)
    return {
        "full_prob": float(full),
        "masked_prob": float(masked),
        "deletion": _probabilities(deletion)[:, c],
        "insertion": _probabilities(insertion)[:, c],
    }


def _image_faithfulness(
    score_images: Callable[[list[np.ndarray]], np.ndarray],
    image: np.ndarray,
    c: int,
    full_prob: float,
    saliency: np.ndarray,
    n_steps: int,
    rng: Any,
) -> dict[str, Any]:
    weights = _unit_weights(saliency)[:, :, None]
    masked = np.clip(image * weights + 0.5, 0, 255).astype(np.uint8)
    # An unchanged image (a map of ones) keeps its score by definition; a network pass in
    # another batch could differ in the last bit and count as an "increase".
    unchanged = np.array_equal(masked, image)
    batch = [] if unchanged else [masked]
    blurred = cv2.GaussianBlur(image, (_BLUR_KSIZE, _BLUR_KSIZE), _BLUR_SIGMA)
    schedule = M.deletion_insertion_orders(saliency, n_steps, rng=rng)
    masks = list(schedule.masks())
    # Deletion step 0 and insertion's last step are the untouched image: its probability is
    # known, so those two passes are skipped.
    for m in masks[1:]:
        batch.append(np.where(m[:, :, None], np.uint8(0), image))
    for m in masks[:-1]:
        batch.append(np.where(m[:, :, None], image, blurred))
    probs = _probabilities(score_images(batch))[:, c]
    if unchanged:
        probs = np.concatenate([[full_prob], probs])
    k = len(masks) - 1
    return {
        "full_prob": float(full_prob),
        "masked_prob": float(probs[0]),
        "deletion": np.concatenate([[full_prob], probs[1 : 1 + k]]),
        "insertion": np.concatenate([probs[1 + k :], [full_prob]]),
    }


def _summarise(
    per_pair: list[dict[str, Any]], n_gt_total: int, faithfulness: str
) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        rows = [p["methods"][method] for p in per_pair]
        energies = np.array([r["energy"] for r in rows], dtype=np.float64)
        ious = [r["iou"] for r in rows]
        n_pred = sum(r["n_pred"] for r in rows)
        n_matched = sum(r["n_matched"] for r in rows)
        s: dict[str, Any] = {
            "pointing_game": float(np.mean([r["hit"] for r in rows])),
            "pointing_game_inside": float(np.mean([r["hit_inside"] for r in rows])),
            "energy_in_box": float(np.nanmean(energies)) if np.isfinite(energies).any()
            else math.nan,
            "n_no_positive_evidence": int(np.isnan(energies).sum()),
            "mean_iou": float(np.mean(ious)),
            "corloc": M.corloc(ious, 0.5),
            # Pooled over the data set: matched boxes / all boxes, not a mean of ratios.
            "box_recall": n_matched / n_gt_total if n_gt_total else math.nan,
            "box_precision": n_matched / n_pred if n_pred else math.nan,
            "n_predicted_boxes": n_pred,
        }
        if faithfulness != "none":
            full = [r["full_prob"] for r in rows]
            masked = [r["masked_prob"] for r in rows]
            deletion = np.array([r["deletion"] for r in rows])
            insertion = np.array([r["insertion"] for r in rows])
            s.update(
                average_drop=M.average_drop(full, masked),
                increase_in_confidence=M.increase_in_confidence(full, masked),
                deletion_auc=float(np.mean([M.auc(d) for d in deletion])),
                insertion_auc=float(np.mean([M.auc(i) for i in insertion])),
                mean_deletion_curve=deletion.mean(axis=0).tolist(),
                mean_insertion_curve=insertion.mean(axis=0).tolist(),
            )
        summary[method] = s
    return summary


def evaluate(
    model: Any,
    annotations: Sequence[Annotation],
    *,
    scales: Sequence[float] = (1.0,),
    mode: str = "largest",
    threshold: float = 0.2,
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
    and averaged over scales; boxes come from :func:`~gapsvm.boxes.cam_to_boxes`. The same
    metrics are computed for the ``centre``, ``uniform`` and ``random`` baselines.

    Parameters
    ----------
    model : GapClassifier
        Fitted, with a linear head.
    annotations : sequence of Annotation
        From :func:`read_boxes_csv`; labels must be model classes (compared as text).
    scales : sequence of float, default (1.0,)
        Network input scales relative to each photo; several give a multi-scale CAM (the
        mean of the upsampled CAMs). The first scale's feature maps are used for the
        feature-cell faithfulness metrics and the image-space runs.
    mode : {"largest", "all"}, default "largest"
        Boxes drawn and used for box recall and precision (IoU >= 0.5): the largest
        component's box, or one box per component. IoU and CorLoc always use the largest.
    threshold : float, default 0.2
        Box threshold as a fraction of the map's maximum.
    faithfulness : {"features", "image", "none"}, default "features"
        See the module documentation.
    n_steps : int, default 32
        Deletion / insertion steps on feature cells.
    image_steps : int, default 8
        Deletion / insertion steps with ``faithfulness="image"``.
    seed : int, default 0
        Seed of the random baseline and of the tie-breaking in the deletion order.
    out_dir : path, optional
        Where to write one overlay PNG per pair (``overlays/<image>.<label>.png``).
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
        (pointing-game tolerance per image size), ``summary`` (per method: pointing game with
        the scaled tolerance and inside a box, energy in box, mean IoU, CorLoc, box recall
        and precision, and the faithfulness metrics) and ``per_image`` (the same per pair,
        with the CAM's predicted boxes). Undefined values are NaN.

    Raises
    ------
    NotLinearError
        The head is not linear in the GAP features.
    ValueError
        Invalid parameters, an empty annotation list, or a label that is not a model class.
    ImageReadError
        An image became unreadable after the CSV was read (overlays already written stay).
    """
    scales = parse_scales(scales)
    if mode not in ("largest", "all"):
        raise ValueError(f"mode must be 'largest' or 'all', got {mode!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    if faithfulness not in _FAITHFULNESS:
        raise ValueError(f"faithfulness must be one of {_FAITHFULNESS}, got {faithfulness!r}")
    for name, v in (("n_steps", n_steps), ("image_steps", image_steps),
                    ("chunk_size", chunk_size)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not annotations:
        raise ValueError("no annotations to evaluate")
    W, b = model.head_.cam_weights()
    class_index = {str(c): i for i, c in enumerate(model.classes_)}
    for ann in annotations:
        if ann.label not in class_index:
            raise ValueError(
                f"label {ann.label!r} of {ann.filename!r} is not a class of the model "
                f"{list(class_index)}"
            )
    out = None if out_dir is None else Path(out_dir) / "overlays"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    scorer = None
    if faithfulness == "image":
        # Masked images are one-off inputs: caching them would only fill the disk.
        fz = model.featurizer().set_params(cache_dir=None, cache_maps=False, verbose=0)

        def scorer(images: list[np.ndarray]) -> np.ndarray:
            return model.class_scores(fz.extract(images, input_size=scales[0]).gap)

    by_file: dict[str, list[int]] = {}
    for i, ann in enumerate(annotations):
        by_file.setdefault(ann.path, []).append(i)
    files = list(by_file)
    per_pair: list[dict[str, Any] | None] = [None] * len(annotations)
    tolerances: dict[str, float] = {}

    for start in range(0, len(files), chunk_size):
        chunk = files[start : start + chunk_size]
        extracted = [model.extract(chunk, maps=True, input_size=s) for s in scales]
        for j, path in enumerate(chunk):
            # (h', w', k) class maps without intercept, one per scale; float64 sums.
            class_maps = [
                np.tensordot(np.asarray(res.maps[j], dtype=np.float64), W.T, axes=([2], [0]))
                for res in extracted
            ]
            hw = extracted[0].image_hw[j]
            grid_hw = class_maps[0].shape[:2]
            image = read_image(path) if (out is not None or scorer is not None) else None
            # Image-space runs compare masked images with the unmasked one passed through the
            # same uncached float32 path, so that "no change" is exactly no change.
            full_probs = None if scorer is None else _probabilities(scorer([image]))[0]
            tol = M.scaled_tolerance(hw)
            tolerances[f"{hw[1]}x{hw[0]}"] = tol
            for i in by_file[path]:
                ann = annotations[i]
                c = class_index[ann.label]
                cam_image = np.mean(
                    [upsample_cam(cm[:, :, c].astype(np.float32), hw) for cm in class_maps],
                    axis=0,
                ).astype(np.float64)
                cam_grid = class_maps[0][:, :, c] if len(scales) == 1 else _to_grid(
                    cam_image, grid_hw
                )
                rng = np.random.default_rng([seed, i])
                # A random map with one value per CAM cell of the scoring scale.
                noise = M.random_map(hw, rng, cell=max(1, round(16 / scales[0])))
                maps = {
                    "cam": (cam_image, cam_grid),
                    "centre": (M.center_map(hw), M.center_map(grid_hw)),
                    "uniform": (M.uniform_map(hw), M.uniform_map(grid_hw)),
                    "random": (noise, _to_grid(noise, grid_hw)),
                }
                result: dict[str, Any] = {
                    "filename": ann.filename,
                    "label": ann.label,
                    "csv_lines": ann.lines,
                    "image_hw": list(hw),
                    "n_gt": len(ann.boxes),
                    "area_share": M.box_area_share(hw, ann.boxes),
                    "class_score": float(
                        class_maps[0][:, :, c].mean() + b[c]
                    ),
                    "methods": {},
                }
                for method, (m_image, m_grid) in maps.items():
                    if method == "centre":
                        largest = predicted = [M.center_box(hw)]
                    else:
                        largest = cam_to_boxes(m_image, threshold, "largest")
                        predicted = (
                            largest if mode == "largest"
                            else cam_to_boxes(m_image, threshold, "all")
                        )
                    mm = _MethodMaps(m_image, m_grid, largest, predicted)
                    r = _localisation(mm, ann.boxes, tol)
                    # Each method gets its own, reproducible tie-breaking stream.
                    tie_rng = np.random.default_rng([seed, i, METHODS.index(method)])
                    if faithfulness == "features":
                        r.update(_feature_faithfulness(
                            class_maps[0], b, c, m_grid, n_steps, tie_rng
                        ))
                    elif faithfulness == "image":
                        r.update(_image_faithfulness(
                            scorer, image, c, float(full_probs[c]), m_image, image_steps, tie_rng
                        ))
                    if method == "cam":
                        cam_predicted = predicted
                        result["boxes"] = [list(bx.as_tuple()) for bx in predicted]
                    result["methods"][method] = r
                per_pair[i] = result
                if out is not None:
                    stem = Path(ann.filename).with_suffix("")
                    target = out / f"{stem}.{safe_label(ann.label)}.png"
                    write_png(target, evaluation_overlay(
                        image, cam_image, cam_predicted, ann.boxes, alpha
                    ))
        if progress is not None:
            progress(len(chunk))

    pairs = [p for p in per_pair if p is not None]
    n_gt = sum(p["n_gt"] for p in pairs)
    summary = _summarise(pairs, n_gt, faithfulness)
    for p in pairs:
        for r in p["methods"].values():
            if "deletion" in r:
                r["deletion_auc"] = M.auc(r.pop("deletion"))
                r["insertion_auc"] = M.auc(r.pop("insertion"))
    return {
        "settings": {
            "scales": list(scales),
            "mode": mode,
            "threshold": float(threshold),
            "faithfulness": faithfulness,
            "n_steps": n_steps if faithfulness == "features" else image_steps,
            "seed": seed,
            "classes": list(class_index),
            "probabilities": "sigmoid(class score)" if len(b) == 2
            else "softmax(class scores)",
        },
        "counts": {
            "images": len(files),
            "pairs": len(pairs),
            "gt_boxes": n_gt,
        },
        "area_share": float(np.mean([p["area_share"] for p in pairs])),
        "tolerance_px": tolerances,
        "summary": summary,
        "per_image": pairs,
    }


def _jsonable(value: Any) -> Any:
    """NaN and infinities become null, NumPy scalars plain numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def write_report(report: dict[str, Any], path: str | os.PathLike) -> None:
    """Write :func:`evaluate`'s report as strict JSON (NaN as null), atomically."""
    text = json.dumps(_jsonable(report), indent=1, allow_nan=False) + "\n"
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)


_ROWS = (
    # key, label, better, format
    ("pointing_game", "pointing game (tolerance {tol})", "high", "{:.3f}"),
    ("pointing_game_inside", "pointing game (max inside a box)", "high", "{:.3f}"),
    ("energy_in_box", "energy in box (area share {share:.3f})", "high", "{:.3f}"),
    ("mean_iou", "IoU, largest box vs best gt", "high", "{:.3f}"),
    ("corloc", "CorLoc (IoU >= 0.5)", "high", "{:.3f}"),
    ("box_recall", "box recall (IoU >= 0.5, mode {mode})", "high", "{:.3f}"),
    ("box_precision", "box precision (IoU >= 0.5)", "high", "{:.3f}"),
    ("average_drop", "Average Drop %", "low", "{:.1f}"),
    ("increase_in_confidence", "Increase in Confidence %", "high", "{:.1f}"),
    ("deletion_auc", "deletion AUC", "low", "{:.3f}"),
    ("insertion_auc", "insertion AUC", "high", "{:.3f}"),
)


def format_table(report: dict[str, Any]) -> str:
    """The table ``gapsvm evaluate`` prints: one row per metric, CAM beside the baselines.

    Parameters
    ----------
    report : dict
        As returned by :func:`evaluate` (or read back from its JSON).

    Returns
    -------
    str
        Plain text (ASCII), a header line and one line per metric; ``-`` for undefined.
    """
    st, counts, summary = report["settings"], report["counts"], report["summary"]
    tols = sorted(set(report["tolerance_px"].values()))
    tol = f"{tols[0]:.1f} px" if len(tols) == 1 else f"{tols[0]:.1f}-{tols[-1]:.1f} px"
    scales = "+".join(f"x{s:g}" for s in st["scales"])
    faith = {"features": f"feature cells, {st['n_steps']} steps",
             "image": f"image pixels, {st['n_steps']} steps", "none": "not computed"}
    lines = [
        f"{counts['images']} images, {counts['pairs']} (image, label) pairs, "
        f"{counts['gt_boxes']} boxes; CAM at scale {scales}, threshold {st['threshold']:g}, "
        f"mode {st['mode']}; faithfulness on {faith[st['faithfulness']]} "
        f"(scores: {st['probabilities']})",
    ]
    width = 40
    lines.append(f"{'metric':<{width}} {'best':>4} " + " ".join(f"{m:>8}" for m in METHODS))
    for key, label, better, fmt in _ROWS:
        if key not in summary["cam"]:
            continue
        name = label.format(tol=tol, share=report["area_share"], mode=st["mode"])
        cells = []
        for m in METHODS:
            v = summary[m].get(key)
            ok = v is not None and isinstance(v, numbers.Real) and math.isfinite(v)
            cells.append(f"{fmt.format(v) if ok else '-':>8}")
        lines.append(f"{name:<{width}} {better:>4} " + " ".join(cells))
    return "\n".join(lines)
