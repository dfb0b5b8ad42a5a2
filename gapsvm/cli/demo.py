"""``gapsvm demo``: write the demo data, then run the user's path on it with the CLI itself.

The data and the command lines come from :mod:`gapsvm.workflows.demo`; each step runs through
:func:`gapsvm.cli.app.run`, the command line without the demo, so nothing imports back here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gapsvm.cli import app
from gapsvm.cli._common import CLIError, add_cache_dir, add_quiet, add_weights

__all__ = [
    "run_demo",
]

# gapsvm.workflows.demo imports numpy and OpenCV: imported when the demo runs, not for --help.

#: The defaults of ``--train-size`` and ``--photo-size``: gapsvm.workflows.demo's TRAIN_SIZE
#: and PHOTO_SIZE (tests/test_cli_main.py checks they agree), spelled here for ``--help``.
TRAIN_SIZE = "112x112"
PHOTO_SIZE = "native"


def add_parser(sub: Any) -> None:
    """Register ``demo`` on the subcommand action ``sub``."""
    d = sub.add_parser("demo", help="the whole path offline on images shipped with "
                       "scikit-image: features, train, cam, report")
    d.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    d.add_argument("--n-per-class", type=int, default=None,
                   help="train on fewer thumbnails per class (1-100, default 100)")
    add_weights(d, "imagenet", "imagenet (default), a Keras weights file, or none (random)")
    add_cache_dir(d)
    d.add_argument("--train-size", default=TRAIN_SIZE, help="--input-size of the thumbnails")
    d.add_argument("--photo-size", default=PHOTO_SIZE, help="--input-size of the photos")
    add_quiet(d, "no progress bars")
    d.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """`gapsvm demo`: write the bundled demo data and run the user's path on it."""
    from gapsvm.workflows.demo import DemoError

    try:
        run_demo(args.out, n_per_class=args.n_per_class, weights=args.weights,
                 cache_dir=args.cache_dir, train_size=args.train_size,
                 photo_size=args.photo_size, quiet=args.quiet)
    except DemoError as exc:
        raise CLIError(str(exc)) from None
    return 0


def _imagenet_installed() -> bool:
    from gapsvm.network.backbone.registry import get_spec
    from gapsvm.network.backbone.weights import imagenet_weights_file

    return imagenet_weights_file(get_spec("vgg16")) is not None


def run_demo(
    out: str | os.PathLike = "demo_out",
    *,
    n_per_class: int | None = None,
    weights: str | None = "imagenet",
    cache_dir: str | os.PathLike | None = None,
    train_size: str = TRAIN_SIZE,
    photo_size: str = PHOTO_SIZE,
    quiet: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Write the demo data and run features -> train -> cam -> report on it.

    Every step is the ``gapsvm`` command line itself, printed before it runs, so the demo is
    the path a user takes with their own images.

    Parameters
    ----------
    out : str or path-like, default="demo_out"
        Output folder: ``data/``, ``features.joblib``, ``model.skops``, ``cam/``, ``report/``.
    n_per_class : int, optional
        Train on the first ``n`` thumbnails of each class only (default all 100).
    weights : "imagenet", path or None, default="imagenet"
        None runs the demo on seeded random weights (plumbing checks; the maps mean nothing).
    cache_dir : path, optional
        Feature cache (default ``$GAPSVM_HOME/features``).
    train_size, photo_size : str, default="112x112", "native"
        ``--input-size`` for the thumbnails and for the photos.
    quiet : bool, default=False
        No progress bars.
    log : callable, default=print

    Returns
    -------
    Path
        The report's ``index.html``.

    Raises
    ------
    DemoError
        A step failed (its error message was printed by the step).
    """
    from gapsvm.workflows.demo import (
        PHOTOS,
        DemoError,
        demo_commands,
        write_demo_data,
        write_report_notes,
    )

    t_start = time.perf_counter()
    out = Path(out)

    def step(argv: list[str]) -> None:
        log(f"\n$ gapsvm {shlex.join(argv)}")
        t0 = time.perf_counter()
        status = app.run(argv)
        if status != 0:
            raise DemoError(f"`gapsvm {argv[0]}` failed (exit status {status})")
        log(f"  ({time.perf_counter() - t0:.1f} s)")

    if weights == "imagenet" and not _imagenet_installed():
        step(["weights", "install"])
    log(f"writing the demo images (from scikit-image's wheel) -> {out / 'data'}")
    d = write_demo_data(out / "data", n_per_class)
    write_report_notes(d, train_size, photo_size, weights)
    log(f"  {d.faces}: " + ", ".join(f"{c} ({k} x 25x25 PNG)" for c, k in d.counts.items()))
    log(f"  {d.photos}: {', '.join(p + '.png' for p in PHOTOS)}")
    for argv in demo_commands(out, weights=weights, cache_dir=cache_dir, train_size=train_size,
                              photo_size=photo_size, quiet=quiet):
        step(argv)
    report = out / "report" / "index.html"
    log(f"\ndemo finished in {time.perf_counter() - t_start:.1f} s")
    log(f"report: {report.resolve()}")
    return report
