"""``gapsvm predict`` (label and score per image) and ``gapsvm cam`` (overlay PNGs)."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gapsvm.cli._common import (
    add_alpha,
    add_featurizer_flags,
    add_model,
    add_target,
    chunks,
    expand_inputs,
    image_run_status,
    load_model_for,
    print_downscaled,
    print_problems,
    start_image_run,
    write_overlay,
)

if TYPE_CHECKING:
    import numpy as np


#: The columns of ``predict``'s output, tab-separated or ``--csv`` (with this header row).
COLUMNS = ("label", "score", "path")

_SCORE_HELP = (
    "Output: one line per image, label, score and path, tab-separated (--csv: the same "
    "columns with a header row). The score is how strongly the head picks the label: for a "
    "linear head, the decision value of the predicted class (two classes: |decision_function|, "
    "larger is farther from the boundary; more: the largest per-class value), in the head's "
    "own units, not a probability; for a head without decision_function (e.g. a random "
    "forest), the predicted class's probability."
)


def add_parser(sub: Any) -> None:
    """Register ``predict`` and ``cam`` on the subcommand action ``sub``."""
    for name, helptext in (("predict", "label and score per image"),
                           ("cam", "write class activation map overlays as PNG")):
        q = sub.add_parser(name, help=helptext,
                           epilog=_SCORE_HELP if name == "predict" else None)
        add_model(q)
        q.add_argument("images", nargs="+", help="image files and/or folders")
        add_featurizer_flags(q, fit_defaults=True)
        if name == "predict":
            q.add_argument("--csv", action="store_true",
                           help="CSV with a header row on standard output")
            q.set_defaults(handler=cmd_predict)
            continue
        add_target(q, "class to explain (default: each image's predicted class)")
        q.add_argument("--out", required=True,
                       help="folder for the PNG overlays, <input name>.cam-<class>.png "
                            "(left out of the scan when inside an input folder)")
        add_alpha(q)
        q.add_argument("--save-npy", action="store_true",
                       help="also save the raw feature-resolution maps (.npy)")
        q.add_argument("--boxes", action="store_true",
                       help="draw the box of the CAM's largest region (magenta) at the "
                            "model's calibrated box threshold and inputs (gapsvm evaluate "
                            "--calibrate), else at 0.2 of its maximum and --input-size")
        q.set_defaults(handler=cmd_cam)


# -- predict -------------------------------------------------------------------------------
def _predict_chunk(model: Any, paths: list[str]) -> tuple[list[tuple[str, Any, float]], int]:
    """(path, label, score) of the readable images, and how many could not be read."""
    import numpy as np

    res = model.extract(paths, on_error="skip")
    ok = res.ok
    pred = np.empty(len(paths), dtype=object)
    score = np.full(len(paths), np.nan)
    if ok.any():
        pred[ok] = model.head_.predict(res.gap[ok])
        if hasattr(model.head_, "decision_function"):
            d = np.asarray(model.head_.decision_function(res.gap[ok]))
            score[ok] = np.abs(d) if d.ndim == 1 else d.max(axis=1)
        elif hasattr(model.head_, "predict_proba"):  # e.g. a random forest: no margin
            proba = np.asarray(model.head_.predict_proba(res.gap[ok]))
            column = {c: i for i, c in enumerate(model.head_.classes_.tolist())}
            score[ok] = proba[np.arange(len(proba)), [column[c] for c in pred[ok]]]
    print_problems(res.errors)
    rows = [(p, lab, s) for p, k, lab, s in zip(paths, ok, pred, score, strict=True) if k]
    return rows, len(res.errors)


def cmd_predict(args: argparse.Namespace) -> int:
    """`gapsvm predict`: label and score per image."""
    model = load_model_for(args)
    scan: list = []
    items = expand_inputs(args.images, scan)
    print_problems(scan)
    rows = []
    n_bad = len(scan)
    for sl in chunks(len(items), 256):
        chunk_rows, chunk_bad = _predict_chunk(model, [p for p, _ in items[sl]])
        rows += chunk_rows
        n_bad += chunk_bad
    # One column order (COLUMNS) for both formats: a script can switch without re-indexing.
    if args.csv:
        w = csv.writer(sys.stdout)
        w.writerow(COLUMNS)
        w.writerows((lab, f"{s:.6g}", p) for p, lab, s in rows)
    else:
        for p, lab, s in rows:
            print(f"{lab}\t{s:+.4f}\t{p}")
    return 1 if n_bad and (args.strict or not rows) else 0


# -- cam -----------------------------------------------------------------------------------
def _write_overlays(
    model: Any, chunk: list[tuple[str, str]], target: Any, out: Path, args: argparse.Namespace,
    used: set[str],
) -> tuple[int, int, int]:
    """The overlays (and ``--save-npy`` maps) of one chunk: (overlays written, images
    unreadable, overlays that could not be written). ``used``: output names taken so far."""
    from gapsvm.core.output import output_name, safe_label, unique_names
    from gapsvm.core.overlay import draw_overlay

    paths = [p for p, _ in chunk]
    info = model.explain(paths, target, on_error="skip")
    print_problems(info.errors)
    print_downscaled(paths, info, model.input_size)
    boxes = _box_lists(model, paths, info, args) if args.boxes else [()] * len(paths)
    done = [(path, rel, cam, label, bx) for (path, rel), cam, label, bx
            in zip(chunk, info.cams, info.target_labels, boxes, strict=True) if cam is not None]
    names = unique_names(
        (output_name(rel, f"cam-{safe_label(label)}") for _, rel, _, label, _ in done), used
    )
    n_bad, n_failed, written = len(info.errors), 0, 0
    for (path, _, cam, _, bx), name in zip(done, names, strict=True):
        def draw(img: np.ndarray, cam: np.ndarray = cam, bx: Any = bx) -> np.ndarray:
            return draw_overlay(img, cam, alpha=args.alpha, pred_boxes=bx)

        w, bad, failed = write_overlay(out, name, path, draw, cam if args.save_npy else None)
        written, n_bad, n_failed = written + w, n_bad + bad, n_failed + failed
    return written, n_bad, n_failed


def _box_lists(model: Any, paths: list[str], info: Any, args: argparse.Namespace) -> list:
    """``--boxes``: each image's boxes as :meth:`GapClassifier.boxes
    <gapsvm.estimator.classifier.GapClassifier.boxes>` gives them (the calibrated threshold
    and inputs when recorded), of the class each overlay shows; [] for unreadable images."""
    from gapsvm.core.boxes import cam_to_boxes
    from gapsvm.estimator.box_settings import box_inputs, box_threshold, fused_cams

    threshold = box_threshold(model)[0]
    # A given --input-size is already the model's own ("fit"), and then it alone is used.
    sizes = box_inputs(model) if args.input_size == "fit" else ("fit",)
    cams = fused_cams(model, paths, info, "fit", sizes)
    return [[] if c is None else cam_to_boxes(c, threshold, "largest") for c in cams]


def cmd_cam(args: argparse.Namespace) -> int:
    """`gapsvm cam`: one class-activation overlay PNG per image."""
    from gapsvm.utils.progress import progress_bar

    out, model, target, items, n_bad = start_image_run(args)
    n_failed, written, used = 0, 0, set()
    with progress_bar(len(items), 1 if not args.quiet else 0, "cam") as bar:
        for sl in chunks(len(items), max(model.batch_size, 32)):
            chunk_written, chunk_bad, chunk_failed = _write_overlays(
                model, items[sl], target, out, args, used)
            written += chunk_written
            n_bad += chunk_bad
            n_failed += chunk_failed
            bar.update(len(items[sl]))
    print(f"{written} overlay(s) -> {out}")
    return image_run_status(n_failed, n_bad, written, args.strict)
