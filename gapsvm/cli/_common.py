"""What the commands share: the options declared once, argument types, loading the model,
and turning command-line inputs into files with safe output names.

A flag that several commands take is declared here, by one function, so its spelling, type,
default and help are the same everywhere; a command module calls the functions it needs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from gapsvm.core.scan import ScanProblem

# Nothing heavier than argparse at module level: `gapsvm --help` and usage errors must not
# wait for numpy or OpenCV (each function imports what it uses).

__all__ = [
    "DETECT_MAX_DETECTIONS",
    "DETECT_NMS_IOU",
    "DETECT_SCALES",
    "CLIError",
    "add_alpha",
    "add_backbone",
    "add_cache_dir",
    "add_detect_flags",
    "add_featurizer_flags",
    "add_model",
    "add_quiet",
    "add_strict",
    "add_target",
    "add_weights",
    "cam_target",
    "check_out",
    "chunks",
    "detect_options",
    "expand_inputs",
    "image_run_status",
    "load_model_for",
    "positive_int",
    "print_downscaled",
    "print_problems",
    "scale_list_arg",
    "size_arg",
    "start_image_run",
    "unit_interval_arg",
    "verbose",
    "weights_arg",
    "whole_number",
    "windows_arg",
    "write_one",
    "write_overlay",
]


class CLIError(Exception):
    """An error to report on one line, without a traceback."""


# -- argument types ------------------------------------------------------------------------
def size_arg(text: str) -> Any:
    """``--input-size``: the grammar of :func:`gapsvm.core.sizes.parse_input_size`."""
    if text == "fit":  # argparse runs string defaults through `type` too
        return "fit"
    from gapsvm.core.sizes import parse_input_size

    try:
        return parse_input_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(text: str, minimum: int, too_small: str) -> int:
    """A count from the command line: a whole number of at least ``minimum``.

    ``too_small`` is the message for a smaller value (``{value}`` is filled in).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(too_small.format(value=value))
    return value


def positive_int(text: str) -> int:
    """A count such as ``--batch-size``: a whole number, 1 or more."""
    return whole_number(text, 1, "{value} is too small: give 1 or more")


def weights_arg(text: str) -> Any:
    """``--weights``: a name or file; ``none`` / ``random`` mean seeded random weights."""
    return None if text.lower() in ("none", "random") else text


# -- options shared by several commands ----------------------------------------------------
def add_model(p: argparse.ArgumentParser) -> None:
    """The ``model`` argument, and ``--trusted``: a pickle-based model is the user's call."""
    p.add_argument("model", help="a model file written by `gapsvm train` (.skops)")
    p.add_argument("--trusted", action="store_true",
                   help="allow pickle-based model files (they can run code)")


def add_quiet(
    p: argparse.ArgumentParser, help_text: str = "no progress bar or hints: errors only"
) -> None:
    """``-q`` / ``--quiet``."""
    p.add_argument("-q", "--quiet", action="store_true", help=help_text)


def add_strict(p: argparse.ArgumentParser) -> None:
    """``--strict``: an unreadable file fails the run, after its work is done."""
    p.add_argument("--strict", action="store_true",
                   help="exit non-zero if any file could not be read")


def add_cache_dir(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--cache-dir``: the feature cache (None: the model's own setting)."""
    where = "$GAPSVM_HOME/features" if default is not None else (
        "the model's own, normally $GAPSVM_HOME/features")
    p.add_argument("--cache-dir", default=default,
                   help=f"feature cache folder (default: {where})")


def add_weights(p: argparse.ArgumentParser, default: str, help_text: str) -> None:
    """``--weights``: imagenet, a Keras weights file, or none."""
    p.add_argument("--weights", type=weights_arg, default=default, help=help_text)


#: The backbone names of :data:`gapsvm.network.backbone.registry.BACKBONES`, in its order.
#: Spelled here because importing the registry runs the backbone package, which loads numpy:
#: `--help` and usage errors must not wait for it. tests/test_cli_main.py checks they agree.
def add_backbone(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--backbone``: a registry name, so a typo is a usage error before start-up."""
    from gapsvm.network.backbone.registry import BACKBONES  # plain Python: no numpy

    p.add_argument("--backbone", choices=tuple(BACKBONES), default="vgg16", metavar="NAME",
                   help=f"{help_text}: {', '.join(BACKBONES)} (README: Backbones)")


def add_alpha(p: argparse.ArgumentParser) -> None:
    """``--alpha``: the heatmap's opacity on the overlays."""
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity")


def add_target(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--target``: the class whose map is drawn (default each image's prediction)."""
    p.add_argument("--target", default=None, help=help_text)


def add_featurizer_flags(p: argparse.ArgumentParser, *, fit_defaults: bool) -> None:
    """The feature extraction flags.

    ``fit_defaults`` (commands that load a model): every flag defaults to the model's own
    setting. Otherwise (``features``): the defaults of a new featurizer, plus ``--weights``
    and ``--backbone``.
    """
    if fit_defaults:
        p.add_argument("--input-size", type=size_arg, default="fit",
                       help="override the model's input size: HxW (e.g. 128x64), S for SxS "
                            "(e.g. 224), a scale xS or Sx (e.g. x2, 1.5x), or native "
                            "(default: the model's own)")
        p.add_argument("--precision", choices=["float32", "bfloat16"], default=None,
                       help="override the model's precision (bfloat16: the fast choice on "
                            "CPUs with AMX or AVX512-BF16; default: the model's own)")
    else:
        p.add_argument("--input-size", type=size_arg, default=(224, 224),
                       help="HxW (e.g. 128x64), S for SxS (e.g. 224), a scale xS or Sx "
                            "(e.g. x2, 1.5x), or native (default 224x224)")
        p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                       help="float32 (default) or bfloat16: faster on CPUs with AMX or "
                            "AVX512-BF16 (benchmarks/README.md)")
        add_weights(p, "imagenet", "imagenet (default), a Keras weights file, or none")
        add_backbone(p, "the frozen Keras network")
    add_cache_dir(p, default=None if fit_defaults else "auto")
    p.add_argument("--batch-size", type=positive_int, default=None if fit_defaults else 16,
                   help="images per network batch" + (" (default: the model's own, 16 "
                   "unless set)" if fit_defaults else " (default 16)"))
    add_quiet(p)
    add_strict(p)


# -- detection (gapsvm detect, gapsvm evaluate --detect) -----------------------------------
#: The defaults of :meth:`GapClassifier.detect <gapsvm.estimator.maps.MapsMixin.detect>`,
#: spelled here because :mod:`gapsvm.estimator.detection` loads numpy: `--help` and usage
#: errors must not wait for it. tests/test_cli_main.py checks they agree.
DETECT_SCALES: tuple[float, ...] = (2.0, 2.5)
DETECT_NMS_IOU = 0.3
DETECT_MAX_DETECTIONS = 100


def scale_list_arg(text: str) -> tuple[float, ...]:
    """Scales of each image's own size: ``2,2.5,3``, ``x2,x3`` or ``native``."""
    from gapsvm.core.sizes import parse_scales

    try:
        return parse_scales(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{exc} (scales of each image's own size: 2,2.5,3, x2 or native)") from None


def windows_arg(text: str) -> tuple[tuple[int, int], ...]:
    """``--window``: window shapes in feature cells, as
    :func:`gapsvm.core.detection.parse_windows` reads them."""
    from gapsvm.core.detection import parse_windows

    try:
        return parse_windows(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _real(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def unit_interval_arg(text: str) -> float:
    """A fraction in [0, 1], such as ``--nms-iou``."""
    value = _real(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is outside [0, 1]")
    return value


def add_detect_flags(
    p: argparse.ArgumentParser, *, scales_flag: str = "--scales", title: str | None = None
) -> None:
    """The options of :meth:`GapClassifier.detect`, read back by :func:`detect_options`.

    ``scales_flag``: the pyramid's spelling (``evaluate`` has its own ``--scales``, so it
    takes ``--detect-scales``); ``title``: put the options in an argument group of that name.
    """
    g: Any = p.add_argument_group(title) if title else p
    g.add_argument(scales_flag, dest="detect_scales", type=scale_list_arg, metavar="S1,S2",
                   default=DETECT_SCALES,
                   help="input pyramid for detection: scales of each image's own size, one "
                        "network pass each (default " + ",".join(f"{s:g}" for s in
                                                                 DETECT_SCALES) + ")")
    g.add_argument("--window", type=windows_arg, default=None, metavar="HxW",
                   help="window shapes in feature cells, height x width, e.g. 8x4 or "
                        "8x4,10x5 (default: the input size the head was trained at, in "
                        "cells: 128x64 at stride 16 is 8x4)")
    g.add_argument("--stride", type=positive_int, default=1,
                   help="feature cells between two window positions (default 1)")
    g.add_argument("--nms-iou", type=unit_interval_arg, default=DETECT_NMS_IOU,
                   help="non-maximum suppression drops a window whose IoU with a better one "
                        f"is above this (default {DETECT_NMS_IOU:g})")
    g.add_argument("--score-threshold", type=_real, default=None, metavar="SCORE",
                   help="keep windows whose decision value is at least this; 0 keeps what "
                        "the head classifies as the target (default: no threshold, the best "
                        "--max-detections of each image)")
    g.add_argument("--max-detections", type=positive_int, default=DETECT_MAX_DETECTIONS,
                   help="at most this many detections per image "
                        f"(default {DETECT_MAX_DETECTIONS})")
    g.add_argument("--box-vote", action=argparse.BooleanOptionalAction, default=True,
                   help="move each box to the score-weighted mean of the windows "
                        "overlapping it, off the grid of feature cells, and suppress the "
                        "duplicates again; --no-box-vote reports the windows themselves "
                        "(default: on)")



def detect_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :meth:`GapClassifier.detect` from :func:`add_detect_flags`."""
    return {"scales": args.detect_scales, "window": args.window, "stride": args.stride,
            "nms_iou": args.nms_iou, "score_threshold": args.score_threshold,
            "max_detections": args.max_detections, "box_vote": args.box_vote}


# -- running -------------------------------------------------------------------------------
def verbose(args: argparse.Namespace) -> int:
    """The ``verbose`` level of a run: 0 with ``--quiet``, else 1 (a bar on terminals)."""
    return 0 if getattr(args, "quiet", False) else 1


def load_model_for(args: argparse.Namespace) -> Any:
    """``args.model``, loaded, with the command's ``--input-size`` / ``--precision`` /
    ``--cache-dir`` overrides, and silent (the commands draw their own progress)."""
    from gapsvm.estimator.persist import load_model

    model = load_model(args.model, trusted=args.trusted)
    if getattr(args, "input_size", "fit") != "fit":
        model.set_params(input_size=args.input_size)
    if getattr(args, "precision", None):
        model.set_params(precision=args.precision)
    if getattr(args, "cache_dir", None) is not None:
        model.set_params(cache_dir=args.cache_dir)
    if getattr(args, "batch_size", None) is not None:
        model.set_params(batch_size=args.batch_size)
    model.set_params(verbose=0)
    return model


def chunks(n: int, size: int) -> Iterator[slice]:
    """Slices of ``range(n)``, ``size`` long (the last one shorter)."""
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def expand_inputs(
    items: Sequence[str],
    problems: list[ScanProblem] | None = None,
    exclude: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """Files and folders from the command line -> (path, unique output name).

    Names are relative to the deepest folder holding every input
    (:func:`~gapsvm.core.output.common_root`): one folder's images relative to it, one file by
    its name, ``a/x.png b/x.png`` as ``a/x.png`` and ``b/x.png``. Folder entries that cannot
    be used (loops, unsupported formats) go to ``problems``; folders in ``exclude`` (an
    output folder inside an input folder) are not scanned.

    Raises
    ------
    CLIError
        A folder without images.
    """
    from gapsvm.core.output import common_root, safe_relpath, unique_names
    from gapsvm.core.scan import list_images, no_images_message

    found: list[str] = []
    for item in items:
        if os.path.isdir(item):
            seen: list[ScanProblem] = []
            paths = list_images(item, seen, exclude=exclude)
            if problems is not None:
                problems.extend(seen)
            if not paths:
                raise CLIError(no_images_message(item, seen))
            found.extend(paths)
        else:
            found.append(item)
    root = common_root(items)
    names = unique_names(safe_relpath(p, root) for p in found)
    return list(zip(found, names, strict=True))


def print_problems(problems: Sequence[Any]) -> None:
    """One ``path: reason`` line per file that could not be used, on standard error."""
    for problem in problems:
        print(f"{problem.path}: {problem.reason}", file=sys.stderr)


# -- writing images (gapsvm cam, gapsvm detect) ------------------------------------------
def cam_target(model: Any, target: str | None) -> Any:
    """``--target`` as the model's class label (None: each image's prediction)."""
    from gapsvm.estimator.targets import resolve_target

    try:
        return resolve_target(model.classes_, target)
    except ValueError:
        raise CLIError(f"unknown --target {target!r}; the model's classes are "
                       f"{[str(c) for c in model.classes_]}") from None


def check_out(out: Path, inputs: list[str]) -> None:
    """``--out`` may be inside an input folder (it is then not scanned), not the folder itself:
    this run's overlays would sit among its images and be read as images by the next."""
    for item in inputs:
        if os.path.isdir(item) and os.path.realpath(item) == os.path.realpath(out):
            raise CLIError(
                f"--out {str(out)!r} is the input folder {item!r}: the overlays would be read "
                "as images on the next run; write them to another folder (a sub-folder of it "
                "is fine: it is left out of the scan)"
            )


def print_downscaled(paths: list[str], info: Any, input_size: Any) -> None:
    """One ``path: note: downscaled ...`` line per image the network saw smaller than asked
    (over the bound on input pixels, :data:`gapsvm.core.sizes.MAX_INPUT_PIXELS`)."""
    from gapsvm.core.sizes import downscale_note, parse_input_size

    size = parse_input_size(input_size, max_pixels=None)
    for path, image_hw, input_hw in zip(paths, info.image_hw, info.input_hw, strict=True):
        note = image_hw and input_hw and downscale_note(image_hw, input_hw, size)
        if note:
            print(f"{path}: note: {note}", file=sys.stderr)


def write_one(out: Path, name: str, rgb: np.ndarray, cam: np.ndarray | None) -> int:
    """Write ``out/name`` (and its ``.npy`` beside it when ``cam`` is given); 1 once the PNG is
    written. OSError or ValueError (a name resolving outside ``out``) say why not."""
    from gapsvm.core.output import path_inside, write_npy, write_png

    dest = path_inside(out, name)
    write_png(dest, rgb)
    if cam is not None:
        try:
            write_npy(dest.with_suffix(".npy"), cam)
        except OSError:
            dest.unlink(missing_ok=True)  # all of an image's files, or none
            raise
    return 1


def write_overlay(out: Path, name: str, path: str, draw: Any,
                  cam: np.ndarray | None = None) -> tuple[int, int, int]:
    """Read the image at ``path`` and write ``draw(image)`` as ``out/name`` (and ``cam`` as
    ``.npy`` beside it): ``(written, unreadable, not written)``, one of them 1. The reason
    for a file that could not be read or written goes to standard error."""
    from gapsvm.core.decode import ImageReadError, read_image

    try:
        img = read_image(path)
    except ImageReadError as exc:  # changed or removed since its maps were made
        print_problems([exc])
        return 0, 1, 0
    try:
        return write_one(out, name, draw(img), cam), 0, 0
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"{path}: overlay not written ({out / name}): {reason}", file=sys.stderr)
        return 0, 0, 1


def start_image_run(
    args: argparse.Namespace, check: Any = None
) -> tuple[Path, Any, Any, list[tuple[str, str]], int]:
    """What ``cam`` and ``detect`` do before any image: check ``--out``, load the model and
    refuse a non-linear head, resolve ``--target``, run ``check(model)`` if given, scan the
    inputs (naming what cannot be used) and create ``--out``.

    Returns
    -------
    (out, model, target, items, n_unusable)
        ``items`` as :func:`expand_inputs` gives them; ``n_unusable`` files were named.
    """
    from pathlib import Path

    out = Path(args.out)
    check_out(out, args.images)
    model = load_model_for(args)
    model.head_.cam_weights()  # a non-linear head fails here, before any image is read
    target = cam_target(model, args.target)
    if check is not None:
        check(model)
    scan: list = []
    items = expand_inputs(args.images, scan, exclude=[str(out)])
    out.mkdir(parents=True, exist_ok=True)
    print_problems(scan)
    return out, model, target, items, len(scan)


def image_run_status(n_failed: int, n_bad: int, written: int, strict: bool) -> int:
    """The exit status of ``cam`` and ``detect``, once the count of overlays not written is
    on standard error: a file that could not be read is skipped (as in ``predict``) unless
    ``--strict`` or nothing was written; one that could not be written is the command's own
    failure."""
    if n_failed:
        print(f"{n_failed} overlay(s) could not be written (listed above)", file=sys.stderr)
    return 1 if n_failed or (n_bad and (strict or not written)) else 0
