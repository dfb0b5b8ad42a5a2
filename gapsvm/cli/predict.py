"""``gapsvm predict`` (label and score per image) and ``gapsvm cam`` (overlay PNGs)."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gapsvm.cli._common import (
    CLIError,
    add_alpha,
    add_featurizer_flags,
    add_model,
    add_target,
    chunks,
    expand_inputs,
    load_model_for,
    print_problems,
)


def add_parser(sub: Any) -> None:
    """Register ``predict`` and ``cam`` on the subcommand action ``sub``."""
    for name, helptext in (("predict", "label and score per image"),
                           ("cam", "write class activation map overlays as PNG")):
        q = sub.add_parser(name, help=helptext)
        add_model(q)
        q.add_argument("images", nargs="+", help="image files and/or folders")
        add_featurizer_flags(q, fit_defaults=True)
        if name == "predict":
            q.add_argument("--csv", action="store_true", help="CSV on standard output")
            q.set_defaults(handler=cmd_predict)
            continue
        add_target(q, "class to explain (default: each image's predicted class)")
        q.add_argument("--out", required=True, help="folder for the PNG overlays")
        add_alpha(q)
        q.add_argument("--save-npy", action="store_true",
                       help="also save the raw feature-resolution maps (.npy)")
        q.set_defaults(handler=cmd_cam)


# -- predict -------------------------------------------------------------------------------
def _predict_chunk(model: Any, paths: list[str]) -> tuple[list[tuple[str, Any, float]], int]:
    """(path, label, score) of the readable images, and how many could not be read."""
    res = model.extract(paths, on_error="skip")
    ok = res.ok
    pred = np.empty(len(paths), dtype=object)
    score = np.full(len(paths), np.nan)
    if ok.any():
        pred[ok] = model.head_.predict(res.gap[ok])
        if hasattr(model.head_, "decision_function"):
            d = np.asarray(model.head_.decision_function(res.gap[ok]))
            score[ok] = np.abs(d) if d.ndim == 1 else d.max(axis=1)
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
    if args.csv:
        w = csv.writer(sys.stdout)
        w.writerow(["path", "label", "score"])
        w.writerows((p, lab, f"{s:.6g}") for p, lab, s in rows)
    else:
        for p, lab, s in rows:
            print(f"{lab}\t{s:+.4f}\t{p}")
    return 1 if n_bad and (args.strict or not rows) else 0


# -- cam -----------------------------------------------------------------------------------
def _cam_target(model: Any, target: str | None) -> Any:
    """``--target`` as the model's class label (None: each image's prediction)."""
    from gapsvm.estimator.targets import resolve_target

    try:
        return resolve_target(model.classes_, target)
    except ValueError:
        raise CLIError(f"unknown --target {target!r}; the model's classes are "
                       f"{[str(c) for c in model.classes_]}") from None


def _write_overlays(
    model: Any, chunk: list[tuple[str, str]], target: Any, out: Path, args: argparse.Namespace
) -> tuple[int, int]:
    """The overlays (and ``--save-npy`` maps) of one chunk: (files written, images failed)."""
    from gapsvm.core.decode import ImageReadError, read_image
    from gapsvm.core.output import path_inside, safe_label, write_npy, write_png
    from gapsvm.core.overlay import draw_overlay

    info = model.explain([p for p, _ in chunk], target, on_error="skip")
    print_problems(info.errors)
    n_bad, written = len(info.errors), 0
    for (path, rel), cam, label in zip(chunk, info.cams, info.target_labels, strict=True):
        if cam is None:
            continue
        try:
            img = read_image(path)
        except ImageReadError as exc:  # changed or removed since its maps were made
            n_bad += 1
            print_problems([exc])
            continue
        stem = str(Path(rel).with_suffix(""))
        dest = path_inside(out, f"{stem}.cam-{safe_label(label)}.png")
        write_png(dest, draw_overlay(img, cam, alpha=args.alpha))
        if args.save_npy:
            write_npy(dest.with_suffix(".npy"), cam)
        written += 1
    return written, n_bad


def cmd_cam(args: argparse.Namespace) -> int:
    """`gapsvm cam`: one class-activation overlay PNG per image."""
    from gapsvm.utils.progress import progress_bar

    model = load_model_for(args)
    model.head_.cam_weights()  # a non-linear head fails here, before any image is read
    target = _cam_target(model, args.target)
    scan: list = []
    items = expand_inputs(args.images, scan)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print_problems(scan)
    n_bad, written = len(scan), 0
    with progress_bar(len(items), 1 if not args.quiet else 0, "cam") as bar:
        for sl in chunks(len(items), max(args.batch_size, 32)):
            chunk_written, chunk_bad = _write_overlays(model, items[sl], target, out, args)
            written += chunk_written
            n_bad += chunk_bad
            bar.update(len(items[sl]))
    print(f"{written} overlay(s) -> {out}")
    return 1 if n_bad and (args.strict or not written) else 0
