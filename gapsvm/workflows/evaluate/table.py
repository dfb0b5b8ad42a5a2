"""The metric table of ``gapsvm evaluate``: one metric is one row of :data:`ROWS`.

A row names the metric's key in the report's ``summary``, its label in the printed table,
whether higher or lower is better, its number format, and how it is summarised over the
(image, label) pairs. :func:`summarise` and :func:`format_table` both read :data:`ROWS`, so
adding a metric is one row here (plus, for a new per-pair value, one entry in
:data:`PAIR_VALUES`) and its test.
"""

from __future__ import annotations

import math
import numbers
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gapsvm.core import metrics as M
from gapsvm.core.boxes import Box
from gapsvm.core.metrics.baselines import BASELINES, MethodMaps

__all__ = [
    "IOU_MATCH",
    "METHODS",
    "PAIR_VALUES",
    "ROWS",
    "Pairs",
    "Row",
    "format_table",
    "localisation_values",
    "summarise",
    "summarise_per_class",
]

#: The map under test and its model-free baselines, in table order.
METHODS = ("cam", *BASELINES)

#: IoU a predicted box needs to count as the object found (CorLoc, box recall, precision).
IOU_MATCH = 0.5

#: Per-pair localisation values of one method: key -> f(maps, ground-truth boxes, tolerance).
PAIR_VALUES: dict[str, Callable[[MethodMaps, list[Box], float], Any]] = {
    "hit": lambda mm, gt, tol: M.pointing_game(mm.image, gt, tol),
    "hit_inside": lambda mm, gt, tol: M.pointing_game(mm.image, gt, 0.0),
    "energy": lambda mm, gt, tol: M.energy_in_box(mm.image, gt),
    "iou": lambda mm, gt, tol: M.best_iou(mm.largest[0] if mm.largest else None, gt),
    "n_pred": lambda mm, gt, tol: len(mm.predicted),
    "n_matched": lambda mm, gt, tol: len(M.match_boxes(mm.predicted, gt, IOU_MATCH)),
    # MaxBoxAccV2's sweep: the boxes of each threshold are computed once per map here.
    "iou_curve": lambda mm, gt, tol: _iou_curve(mm, gt),
}


def _iou_curve(mm: MethodMaps, gt: list[Box]) -> np.ndarray:
    if mm.sweep:
        return M.iou_curve(mm.image, gt)
    fixed = M.best_iou(mm.largest[0] if mm.largest else None, gt)
    return np.full(len(M.MAXBOXACC_THRESHOLDS), fixed)


def localisation_values(mm: MethodMaps, gt: list[Box], tolerance: float) -> dict[str, Any]:
    """Every :data:`PAIR_VALUES` entry for one method on one (image, label) pair.

    Parameters
    ----------
    mm : MethodMaps
        The method's maps and boxes.
    gt : list of Box
        The pair's ground-truth boxes.
    tolerance : float
        Pointing-game tolerance in pixels for this image.

    Returns
    -------
    dict
    """
    return {key: value(mm, gt, tolerance) for key, value in PAIR_VALUES.items()}


@dataclass(frozen=True)
class Pairs:
    """One method's per-pair values over the data set, as a row's summary reads them.

    Attributes
    ----------
    values : list of dict
        One dict per (image, label) pair: :data:`PAIR_VALUES` keys, ``correct`` (the
        classifier's top class is the pair's label), plus ``full_prob``, ``masked_prob``,
        ``deletion`` and ``insertion`` when faithfulness was computed.
    n_gt : int
        Ground-truth boxes over all pairs.
    """

    values: list[dict[str, Any]]
    n_gt: int

    def get(self, key: str) -> list[Any]:
        """The pairs' values of ``key``, in pair order."""
        return [v[key] for v in self.values]

    def total(self, key: str) -> int:
        """Sum of ``key`` over the pairs."""
        return sum(self.get(key))


@dataclass(frozen=True)
class Row:
    """One metric of the table and of the report's ``summary``.

    Attributes
    ----------
    key : str
        Key in each method's ``summary``.
    label : str or None
        Name printed in the table; ``{tol}``, ``{share}`` and ``{mode}`` are filled in. None
        keeps the value in the JSON report only.
    better : {"high", "low", ""}
        Which way is better ("" for counts).
    fmt : str
        Number format in the table.
    summarise : callable
        ``summarise(pairs: Pairs)`` -> the data set's value (NaN when undefined).
    faithfulness : bool
        Needs the faithfulness values (absent with ``faithfulness="none"``).
    per_class : {"", "json", "print"}
        Also summarised per class (the report's ``per_class``), and printed there.
    """

    key: str
    label: str | None
    better: str
    fmt: str
    summarise: Callable[[Pairs], Any]
    faithfulness: bool = False
    per_class: str = ""


def _mean(key: str) -> Callable[[Pairs], float]:
    return lambda p: float(np.mean(p.get(key)))


def _energies(p: Pairs) -> np.ndarray:
    # NaN: the map has no positive value, so no mass to put anywhere.
    return np.array(p.get("energy"), dtype=np.float64)


def _energy_in_box(p: Pairs) -> float:
    e = _energies(p)
    return float(np.nanmean(e)) if np.isfinite(e).any() else math.nan


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


def _mean_auc(key: str) -> Callable[[Pairs], float]:
    return lambda p: float(np.mean([M.auc(curve) for curve in p.get(key)]))


def _mean_curve(key: str) -> Callable[[Pairs], list[float]]:
    return lambda p: np.array(p.get(key)).mean(axis=0).tolist()


def _maxboxacc(p: Pairs) -> M.MaxBoxAcc:
    return M.max_box_accuracy(np.stack(p.get("iou_curve")))


def _at_iou(level: float) -> Callable[[Pairs], float]:
    return lambda p: _maxboxacc(p).per_iou[level]


def _best_thresholds(p: Pairs) -> dict[str, float]:
    return {f"{d:g}": t for d, t in _maxboxacc(p).best_threshold.items()}


#: The metrics, in report and table order.
ROWS: tuple[Row, ...] = (
    # The weakly-supervised localisation protocol (CAM paper, Choe et al. 2020).
    Row("accuracy", "classification accuracy", "high", "{:.3f}", _mean("correct"),
        per_class="print"),
    Row("gt_known", "GT-known loc (CorLoc, IoU >= 0.5)", "high", "{:.3f}",
        lambda p: M.corloc(p.get("iou"), IOU_MATCH), per_class="print"),
    Row("top1_loc", "top-1 loc (right class, IoU >= 0.5)", "high", "{:.3f}",
        lambda p: M.top1_localisation(p.get("correct"), p.get("iou"), IOU_MATCH),
        per_class="print"),
    Row("maxboxacc_v2", "MaxBoxAccV2 (IoU 0.3/0.5/0.7)", "high", "{:.3f}",
        lambda p: _maxboxacc(p).value, per_class="print"),
    *(Row(f"maxboxacc_iou{round(100 * d)}", f"  box acc at best threshold, IoU {d:g}",
          "high", "{:.3f}", _at_iou(d), per_class="json") for d in M.MAXBOXACC_IOUS),
    Row("maxboxacc_best_threshold", None, "", "", _best_thresholds, per_class="json"),
    Row("pointing_game", "pointing game (tolerance {tol})", "high", "{:.3f}", _mean("hit")),
    Row("pointing_game_inside", "pointing game (max inside a box)", "high", "{:.3f}",
        _mean("hit_inside")),
    Row("energy_in_box", "energy in box (area share {share:.3f})", "high", "{:.3f}",
        _energy_in_box),
    Row("n_no_positive_evidence", None, "", "{:d}", lambda p: int(np.isnan(_energies(p)).sum())),
    Row("mean_iou", "IoU, largest box vs best gt", "high", "{:.3f}", _mean("iou")),
    # The same value as gt_known, under its older name (JSON only).
    Row("corloc", None, "high", "{:.3f}", lambda p: M.corloc(p.get("iou"), IOU_MATCH)),
    # Pooled over the data set: matched boxes / all boxes, not a mean of per-image ratios.
    Row("box_recall", "box recall (IoU >= 0.5, mode {mode})", "high", "{:.3f}",
        lambda p: _ratio(p.total("n_matched"), p.n_gt)),
    Row("box_precision", "box precision (IoU >= 0.5)", "high", "{:.3f}",
        lambda p: _ratio(p.total("n_matched"), p.total("n_pred"))),
    Row("n_predicted_boxes", None, "", "{:d}", lambda p: p.total("n_pred")),
    Row("average_drop", "Average Drop %", "low", "{:.1f}",
        lambda p: M.average_drop(p.get("full_prob"), p.get("masked_prob")), True),
    Row("increase_in_confidence", "Increase in Confidence %", "high", "{:.1f}",
        lambda p: M.increase_in_confidence(p.get("full_prob"), p.get("masked_prob")), True),
    Row("deletion_auc", "deletion AUC", "low", "{:.3f}", _mean_auc("deletion"), True),
    Row("insertion_auc", "insertion AUC", "high", "{:.3f}", _mean_auc("insertion"), True),
    Row("mean_deletion_curve", None, "low", "", _mean_curve("deletion"), True),
    Row("mean_insertion_curve", None, "high", "", _mean_curve("insertion"), True),
)  # fmt: skip


def summarise(
    per_pair: list[dict[str, Any]], n_gt: int, faithfulness: bool
) -> dict[str, dict[str, Any]]:
    """The report's ``summary``: every row of :data:`ROWS` for every method.

    Parameters
    ----------
    per_pair : list of dict
        The report's ``per_image`` entries, each with ``methods[method]`` holding that
        method's per-pair values (faithfulness curves not yet reduced to AUCs).
    n_gt : int
        Ground-truth boxes over all pairs.
    faithfulness : bool
        Whether the faithfulness values were computed (else their rows are left out).

    Returns
    -------
    dict
        ``{method: {row key: value}}`` for the methods of :data:`METHODS`, in table order.
    """
    summary: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        pairs = Pairs([p["methods"][method] for p in per_pair], n_gt)
        summary[method] = {
            row.key: row.summarise(pairs) for row in ROWS if faithfulness or not row.faithfulness
        }
    return summary


def summarise_per_class(per_pair: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The report's ``per_class``: the per-class rows of :data:`ROWS` on each label's pairs.

    Parameters
    ----------
    per_pair : list of dict
        As for :func:`summarise`, each entry with its ``label`` and ``n_gt``.

    Returns
    -------
    dict
        ``{label: {method: {row key: value}}}``, labels in order of first appearance.
    """
    by_label: dict[str, list[dict[str, Any]]] = {}
    for p in per_pair:
        by_label.setdefault(str(p["label"]), []).append(p)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for label, pairs_of in by_label.items():
        n_gt = sum(p["n_gt"] for p in pairs_of)
        out[label] = {}
        for method in METHODS:
            pairs = Pairs([p["methods"][method] for p in pairs_of], n_gt)
            out[label][method] = {row.key: row.summarise(pairs) for row in ROWS if row.per_class}
    return out


def _size(s: Any) -> str:
    # A scale of each photo (x2), or a fixed network input (224x224; a list in JSON).
    return f"{s[0]}x{s[1]}" if isinstance(s, list | tuple) else f"x{s:g}"


def _header(report: dict[str, Any]) -> str:
    st, counts = report["settings"], report["counts"]
    scales = "+".join(_size(s) for s in st["scales"])
    faith = {
        "features": f"feature cells, {st['n_steps']} steps",
        "image": f"image pixels, {st['n_steps']} steps",
        "none": "not computed",
    }
    # Where the threshold came from (calibrated, given, default); older reports lack it.
    source = f" ({st['threshold_source']})" if st.get("threshold_source") else ""
    return (
        f"{counts['images']} images, {counts['pairs']} (image, label) pairs, "
        f"{counts['gt_boxes']} boxes; CAM at scale {scales}, threshold {st['threshold']:g}"
        f"{source}, "
        f"mode {st['mode']}; faithfulness on {faith[st['faithfulness']]} "
        f"(scores: {st['probabilities']})"
    )


def _cell(value: Any, fmt: str) -> str:
    ok = value is not None and isinstance(value, numbers.Real) and math.isfinite(value)
    return f"{fmt.format(value) if ok else '-':>8}"


def format_table(report: dict[str, Any]) -> str:
    """The table ``gapsvm evaluate`` prints: one row per metric, CAM beside the baselines.

    Parameters
    ----------
    report : dict
        As returned by :func:`~gapsvm.workflows.evaluate.evaluate` (or read back from its
        JSON).

    Returns
    -------
    str
        Plain text (ASCII), a header line and one line per metric; ``-`` for undefined.
    """
    summary, mode = report["summary"], report["settings"]["mode"]
    tols = sorted(set(report["tolerance_px"].values()))
    tol = f"{tols[0]:.1f} px" if len(tols) == 1 else f"{tols[0]:.1f}-{tols[-1]:.1f} px"
    width = 40
    lines = [
        _header(report),
        f"{'metric':<{width}} {'best':>4} " + " ".join(f"{m:>8}" for m in METHODS),
    ]
    for row in ROWS:
        if row.label is None or row.key not in summary["cam"]:
            continue
        name = row.label.format(tol=tol, share=report["area_share"], mode=mode)
        cells = " ".join(_cell(summary[m].get(row.key), row.fmt) for m in METHODS)
        lines.append(f"{name:<{width}} {row.better:>4} {cells}")
    lines.extend(_per_class_lines(report, width))
    lines.extend(textwrap.wrap(_LEGEND, width=width + 6 + 9 * len(METHODS)))
    return "\n".join(lines)


#: What the baseline columns are, printed under the table.
_LEGEND = (
    "baselines (no model): centre = centred box of half each side; uniform = whole-image box; "
    "random = smooth noise map; gaussian = centre-Gaussian map (Choe et al. 2020) boxed like "
    "the CAM. Classification accuracy is the model's in every column (top-1 loc needs it). "
    "MaxBoxAccV2 picks its threshold on the images scored (its definition)."
)


def _per_class_lines(report: dict[str, Any], width: int) -> list[str]:
    per_class = report.get("per_class") or {}
    if len(per_class) < 2:
        return []
    rows = [r for r in ROWS if r.per_class == "print" and r.label is not None]
    lines = ["per class:"]
    for label, summary in per_class.items():
        lines.append(label)
        for row in rows:
            name = f"  {row.label}"[:width]
            cells = " ".join(_cell(summary[m].get(row.key), row.fmt) for m in METHODS)
            lines.append(f"{name:<{width}} {row.better:>4} {cells}")
    return lines
