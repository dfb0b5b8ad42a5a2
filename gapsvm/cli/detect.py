"""``gapsvm detect``: every instance of a class in each image, as scored boxes in a CSV and
overlays.

The windows are scored on the class activation map (:meth:`GapClassifier.detect
<gapsvm.estimator.maps.MapsMixin.detect>`): one network pass per scale of the pyramid, then
every window's mean CAM plus the intercept, and non-maximum suppression. ``detections.csv``
has the columns of a boxes CSV (:mod:`gapsvm.core.boxes_csv`) plus ``score``, with file names
relative to the input folder, so it can be read back as boxes.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gapsvm.cli._common import (
    add_alpha,
    add_detect_flags,
    add_featurizer_flags,
    add_model,
    chunks,
    detect_options,
    image_run_status,
    print_downscaled,
    print_problems,
    start_image_run,
    write_overlay,
)

if TYPE_CHECKING:
    import numpy as np

#: The columns of ``detections.csv``, one row per detection, boxes with exclusive maxima.
CSV_COLUMNS = ("filename", "label", "score", "x_min", "y_min", "x_max", "y_max")
#: The file of detections in ``--out``.
CSV_NAME = "detections.csv"


def add_parser(sub: Any) -> None:
    """Register ``detect`` on the subcommand action ``sub``."""
    q = sub.add_parser(
        "detect", help="every instance of a class: scored boxes from sliding windows on the "
        "CAM, as a CSV and overlays",
        epilog="Output: --out/detections.csv with the columns "
        f"{','.join(CSV_COLUMNS)} (one row per detection; pixels, exclusive x_max / y_max; "
        "the score is the window's decision value, the mean CAM over its cells plus the "
        "intercept), and one overlay per image, <input name>.detect-<class>.png: the CAM at "
        "the pyramid's largest scale with the boxes and their scores in magenta.",
    )
    add_model(q)
    q.add_argument("images", nargs="+", help="image files and/or folders")
    add_featurizer_flags(q, fit_defaults=True)
    q.add_argument("--target", required=True, help="the class to find, e.g. person")
    q.add_argument("--out", required=True,
                   help=f"folder for {CSV_NAME} and the overlay PNGs (left out of the scan "
                        "when inside an input folder)")
    add_alpha(q)
    add_detect_flags(q, title="detection")
    q.set_defaults(handler=cmd_detect)


def _overlay(img: np.ndarray, cam: np.ndarray, detections: list, alpha: float) -> np.ndarray:
    """``cam``'s overlay (:func:`gapsvm.core.overlay.draw_overlay`) with each detection's box
    and score in the predicted-box colour."""
    from gapsvm.core.boxes import draw_boxes
    from gapsvm.core.overlay import PRED_COLOR, draw_overlay

    drawn = draw_overlay(img, cam, alpha=alpha)
    if not detections:
        return drawn
    return draw_boxes(drawn, [d.box for d in detections], color=PRED_COLOR, thickness=2,
                      labels=[f"{d.score:.2f}" for d in detections])


def _detect_chunk(
    model: Any, chunk: list[tuple[str, str]], target: Any, out: Path,
    args: argparse.Namespace, used: set[str],
) -> tuple[list[tuple[Any, ...]], int, int, int]:
    """One chunk: its CSV rows, overlays written, images unreadable, overlays not written.
    ``used``: output names taken so far."""
    from gapsvm.core.output import output_name, safe_label, unique_names
    from gapsvm.estimator.detection import detect_of

    options = detect_options(args)
    run = detect_of(model, [p for p, _ in chunk], target, **options, on_error="skip")
    print_problems(run.errors)
    # The overlay shows the finest map the windows were scored on.
    scale = max(run.pyramid)
    info = run.pyramid[scale]
    print_downscaled([p for p, _ in chunk], info, scale)
    found = [(path, rel, dets, cam) for (path, rel), dets, cam
             in zip(chunk, run.detections, info.cams, strict=True) if dets is not None]
    rows = [(rel, d.label, f"{d.score:.6g}", *d.box.as_tuple())
            for _, rel, dets, _ in found for d in dets]
    names = unique_names(
        (output_name(rel, f"detect-{safe_label(target)}") for _, rel, _, _ in found), used)
    n_bad, n_failed, written = len(run.errors), 0, 0
    for (path, _, dets, cam), name in zip(found, names, strict=True):
        w, bad, failed = write_overlay(
            out, name, path, lambda img, cam=cam, dets=dets: _overlay(img, cam, dets, args.alpha))
        written, n_bad, n_failed = written + w, n_bad + bad, n_failed + failed
    return rows, written, n_bad, n_failed


def write_detections_csv(path: str | Path, rows: list[tuple[Any, ...]]) -> None:
    """``detections.csv``: a header of :data:`CSV_COLUMNS`, then ``rows``, written atomically
    (even with no row, so that "nothing found" differs from "did not run")."""
    from gapsvm.utils.atomic import atomic_write

    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        w.writerows(rows)


def cmd_detect(args: argparse.Namespace) -> int:
    """`gapsvm detect`: scored boxes of every instance of ``--target``, as CSV and overlays."""
    from gapsvm.estimator.detection import model_window
    from gapsvm.utils.progress import progress_bar

    # A model without a fixed training size needs --window: say so before any image.
    out, model, target, items, n_bad = start_image_run(
        args, check=model_window if args.window is None else None)
    rows: list[tuple[Any, ...]] = []
    n_failed, written, used = 0, 0, set()
    with progress_bar(len(items), 1 if not args.quiet else 0, "detect") as bar:
        for sl in chunks(len(items), max(model.batch_size, 32)):
            chunk_rows, chunk_written, chunk_bad, chunk_failed = _detect_chunk(
                model, items[sl], target, out, args, used)
            rows += chunk_rows
            written += chunk_written
            n_bad += chunk_bad
            n_failed += chunk_failed
            bar.update(len(items[sl]))
    write_detections_csv(out / CSV_NAME, rows)
    print(f"{len(rows)} detection(s) of {target!s} -> {out / CSV_NAME}; "
          f"{written} overlay(s) -> {out}")
    return image_run_status(n_failed, n_bad, written, args.strict)
