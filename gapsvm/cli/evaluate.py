"""``gapsvm evaluate``: CAMs against ground-truth boxes, beside baselines.

The network sees each photo at scales of its own size, or at a fixed size such as the one the
head was trained at. ``--input-size`` takes them in the grammar of every other command
(``x2``, ``native``, ``224x224``, or a list ``x1,x2``); ``--scale 2`` and ``--scales 1,2``
are the older spellings of scales, read by :func:`gapsvm.core.sizes.parse_scales` into the
same setting, ``args.scales``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gapsvm.cli._common import (
    CLIError,
    add_alpha,
    add_cache_dir,
    add_detect_flags,
    add_model,
    add_quiet,
    detect_options,
    load_model_for,
    scale_list_arg,
    verbose,
)


def input_size_scales_arg(text: str) -> tuple[float | tuple[int, int], ...]:
    """``--input-size`` of ``evaluate``: the size grammar of every command, as a list.

    Each item is a scale of each photo (``native``, ``x2``) or a fixed size (``224x224``,
    ``224``: the size a head was trained at); a list ``x1,x2`` gives a multi-scale CAM. A
    bare number is a size here as everywhere ``--input-size`` is taken (``2`` is 2x2 pixels,
    refused); ``--scale 2`` and ``--scales 1,2`` are the spellings where it is a scale.
    """
    from gapsvm.core.sizes import parse_input_size

    sizes: list[float | tuple[int, int]] = []
    for item in text.split(","):
        try:
            size = parse_input_size(item.strip())
        except ValueError as exc:
            hint = (f"; for a scale of each photo write x{item.strip()}"
                    if item.strip().replace(".", "", 1).isdigit() else "")
            raise argparse.ArgumentTypeError(f"{exc}{hint}") from None
        size = 1.0 if size is None else size
        if size not in sizes:
            sizes.append(size)
    return tuple(sizes)


def _add_scale_flags(p: argparse.ArgumentParser) -> None:
    how = p.add_mutually_exclusive_group()
    how.add_argument("--input-size", dest="scales", type=input_size_scales_arg, metavar="SIZE",
                     help="network input: native (default), a scale x2, a fixed size such as "
                          "224x224 (the size the head was trained at), or a list x1,x2 "
                          "(multi-scale CAM: the mean of the upsampled CAMs)")
    how.add_argument("--scale", dest="scales", type=scale_list_arg, help="resize the photos by "
                     "this factor before the network (default 1: their own size; small "
                     "objects need 2: one map cell per 16 network pixels); --input-size xS")
    how.add_argument("--scales", dest="scales", type=scale_list_arg, metavar="S1,S2",
                     help="multi-scale CAM: the mean of the upsampled CAMs at these scales, "
                          "e.g. 1,2; --input-size x1,x2 (default: one scale, 1)")
    # None: the model's calibrated inputs when recorded, else x1 (each photo's own size).
    p.set_defaults(scales=None)


def candidates_arg(text: str) -> tuple[tuple[Any, ...], ...]:
    """``--calibrate-scales``: candidate inputs, ``x1,x1.5,x2``; ``x1+x2`` is one multi-scale
    candidate (the mean of the upsampled CAMs)."""
    return tuple(input_size_scales_arg(item.replace("+", ","))
                 for item in text.split(",") if item.strip())


def _add_calibration_flags(e: argparse.ArgumentParser) -> None:
    c = e.add_argument_group("calibration (choose on one set, score on another)")
    c.add_argument("--calibrate", metavar="CAL_BOXES_CSV", help="choose the box threshold "
                   "maximising GT-known localisation (IoU >= 0.5) on these boxes, then score "
                   "BOXES_CSV with it; the two sets must share no image (default: no calibration: "
                   "the model's recorded threshold, else 0.2)")
    c.add_argument("--calibration-images", metavar="DIR", help="folder of --calibrate's file "
                   "names (default: --images)")
    c.add_argument("--calibrate-scales", type=candidates_arg, metavar="S1,S2",
                   help="also choose the network input among these, e.g. x1,x1.5,x2 (x1+x2: "
                        "a multi-scale candidate); default: --input-size's, x1")
    c.add_argument("--save-model", metavar="PATH", help="write the model with the "
                   "calibration recorded (box_threshold_, box_scales_) to PATH, the default of "
                   "boxes(), cam --boxes and evaluate (an existing file is replaced, and said; "
                   "default: the calibration is used for this run only)")


def add_parser(sub: Any) -> None:
    """Register ``evaluate`` on the subcommand action ``sub``."""
    e = sub.add_parser("evaluate", help="localisation and faithfulness of CAMs against "
                       "ground-truth boxes (and, on labelled classes, accuracy, GT-known and top-1 "
                       "localisation, MaxBoxAccV2), beside model-free baselines")
    add_model(e)
    e.add_argument("boxes_csv", help="CSV with filename,label,x_min,y_min,x_max,y_max, one "
                   "row per box, pixels, exclusive x_max / y_max")
    e.add_argument("--images", required=True, help="folder the CSV's file names are in")
    e.add_argument("--out", required=True, help="folder for overlays/*.png and evaluation.json")
    _add_scale_flags(e)
    e.add_argument("--mode", choices=["largest", "all"], default="largest",
                   help="boxes from the largest region only, or one per region")
    e.add_argument("--threshold", type=float, default=None,
                   help="box threshold, a fraction of the CAM's maximum (default: the "
                        "model's calibrated one when recorded, else 0.2)")
    e.add_argument("--faithfulness", choices=["features", "image", "none"], default="features",
                   help="mask feature-map cells (exact for the linear head, no network pass; "
                        "default), image pixels (a network pass per step), or skip")
    e.add_argument("--steps", type=int, default=32, help="deletion / insertion steps on "
                   "feature cells (default 32)")
    e.add_argument("--image-steps", type=int, default=8, help="deletion / insertion steps "
                   "with --faithfulness image (default 8)")
    e.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    e.add_argument("--inclusive-max", action="store_true", help="the CSV's x_max / y_max "
                   "are the last pixel inside the box (PASCAL VOC style): add one")
    _add_calibration_flags(e)
    _add_detect_flags(e)
    add_alpha(e)
    add_cache_dir(e)
    add_quiet(e)
    e.set_defaults(handler=cmd_evaluate)


def _add_detect_flags(e: argparse.ArgumentParser) -> None:
    e.add_argument("--detect", action="store_true",
                   help="also score `gapsvm detect` as a detector (average precision at IoU "
                        "0.5 and 0.3, recall at 1 false positive per image, best recall, "
                        "pooled over the images with boxes of each class), beside the CAM's "
                        "boxes --mode all scored by their mean CAM; and what detect's "
                        "best-scored false positives are (background, localisation, "
                        "duplicate)")
    add_detect_flags(e, scales_flag="--detect-scales",
                     title="detection (with --detect; as in gapsvm detect)")


def _detection(args: argparse.Namespace, model: Any, anns: list, scales: Any,
               threshold: float | None, source: str | None) -> dict[str, Any]:
    """``--detect``: detect and the boxes(mode="all") baseline, pooled per class."""
    from gapsvm.utils.progress import progress_bar
    from gapsvm.workflows.evaluate import evaluate_detection

    with progress_bar(len(anns), verbose(args), "detect") as bar:
        return evaluate_detection(model, anns, detect_options=detect_options(args),
                                  scales=scales, threshold=threshold, threshold_source=source,
                                  progress=bar.update)


def _check_calibration_flags(args: argparse.Namespace) -> None:
    """The calibration flags that make sense only together, or never together."""
    if args.calibrate is None:
        for flag in ("calibration_images", "calibrate_scales", "save_model"):
            if getattr(args, flag) is not None:
                raise CLIError(f"--{flag.replace('_', '-')} needs --calibrate CAL_BOXES_CSV")
        return
    if args.threshold is not None:
        raise CLIError("--threshold and --calibrate both set the threshold; give one")
    if args.calibrate_scales is not None and args.scales is not None:
        raise CLIError("--calibrate-scales chooses the network input; drop --input-size "
                       "(or --scale/--scales), or give it as the only candidate")


def _calibrate(args: argparse.Namespace, model: Any, scored: list, bar_on: int) -> Any:
    """Choose the threshold (and inputs) on ``--calibrate``'s boxes: never the scored ones."""
    from gapsvm.core.boxes_csv import read_boxes_csv
    from gapsvm.estimator.box_settings import box_scales
    from gapsvm.utils.progress import progress_bar
    from gapsvm.workflows.evaluate.calibrate import calibrate, check_disjoint

    cal = read_boxes_csv(args.calibrate, args.calibration_images or args.images,
                         classes=model.classes_, inclusive_max=args.inclusive_max)
    check_disjoint(cal, scored)
    # One candidate unless asked: the inputs evaluate would score at.
    candidates = args.calibrate_scales or (args.scales or box_scales(model) or (1.0,),)
    with progress_bar(len({a.path for a in cal}), bar_on, "calibrate") as bar:
        return calibrate(model, cal, candidates=candidates, name=args.calibrate,
                         progress=bar.update)


def _save_calibrated(args: argparse.Namespace, calibration: Any) -> None:
    """``--save-model``: the model file as loaded, with the calibration recorded."""
    from gapsvm.estimator.box_settings import record_box_calibration
    from gapsvm.estimator.persist import load_model

    model = load_model(args.model, trusted=args.trusted)  # without this run's overrides
    record_box_calibration(model, calibration.threshold, calibration.scales,
                           calibration.source)
    existed = os.path.exists(args.save_model)
    model.save(args.save_model)
    print(f"calibrated model (box threshold {calibration.threshold:g}) -> {args.save_model}"
          + (" (replaced the existing file)" if existed else ""))


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`gapsvm evaluate`: localisation and faithfulness metrics against boxes, with baselines;
    with ``--calibrate``, at the threshold chosen on another set."""
    from gapsvm.core.boxes_csv import read_boxes_csv
    from gapsvm.utils.progress import progress_bar
    from gapsvm.workflows.evaluate import (
        evaluate,
        format_detection_table,
        format_table,
        write_report,
    )

    _check_calibration_flags(args)
    model = load_model_for(args)
    model.head_.cam_weights()  # a non-linear head fails here, before any image is read
    if args.detect and args.window is None:
        from gapsvm.estimator.detection import model_window

        model_window(model)  # a model without a fixed training size needs --window: now
    anns = read_boxes_csv(args.boxes_csv, args.images, classes=model.classes_,
                          inclusive_max=args.inclusive_max)
    scales, threshold, source, calibration = args.scales, args.threshold, None, None
    if threshold is not None:
        source = "given --threshold"
    if args.calibrate is not None:
        calibration = _calibrate(args, model, anns, verbose(args))
        scales, threshold = calibration.scales, calibration.threshold
        source = calibration.source
    with progress_bar(len({a.path for a in anns}), verbose(args), "evaluate") as bar:
        report = evaluate(
            model, anns, scales=scales, mode=args.mode, threshold=threshold,
            threshold_source=source, faithfulness=args.faithfulness, n_steps=args.steps,
            image_steps=args.image_steps, seed=args.seed, out_dir=args.out, alpha=args.alpha,
            progress=bar.update,
        )
    if calibration is not None:
        report["settings"]["calibration"] = calibration.as_json()
    if args.detect:
        report["detection"] = _detection(args, model, anns, scales, threshold, source)
    report["inputs"] = {"model": os.path.abspath(args.model),
                        "boxes_csv": os.path.abspath(args.boxes_csv),
                        "images": os.path.abspath(args.images)}
    write_report(report, Path(args.out) / "evaluation.json")
    print(format_table(report))
    if args.detect:
        print(format_detection_table(report["detection"]))
    print(f"{report['counts']['pairs']} overlay(s) and evaluation.json -> {args.out}")
    if calibration is not None and args.save_model:
        _save_calibrated(args, calibration)
    return 0
