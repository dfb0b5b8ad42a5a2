"""``gapsvm demo``: write the demo data, then run the user's path on it with the CLI itself."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from gapsvm.workflows.demo import (
    PHOTO_SIZE,
    PHOTOS,
    TRAIN_SIZE,
    DemoError,
    _notes,
    _weights_installed,
    demo_commands,
    write_demo_data,
)

__all__ = [
    "run_demo",
]


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

    Every step is the ``gapsvm`` command line itself (:func:`gapsvm.cli.main`), printed before
    it runs, so the demo is the path a user takes with their own images.

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
    from gapsvm.cli import main as cli

    t_start = time.perf_counter()
    out = Path(out)

    def step(argv: list[str]) -> None:
        log(f"\n$ gapsvm {shlex.join(argv)}")
        t0 = time.perf_counter()
        status = cli.main(argv)
        if status != 0:
            raise DemoError(f"`gapsvm {argv[0]}` failed (exit status {status})")
        log(f"  ({time.perf_counter() - t0:.1f} s)")

    if weights == "imagenet" and not _weights_installed():
        step(["weights", "install"])
    log(f"writing the demo images (from scikit-image's wheel) -> {out / 'data'}")
    d = write_demo_data(out / "data", n_per_class)
    (d.root / "report_notes.txt").write_text(
        _notes(d.counts, train_size, photo_size, weights), encoding="utf-8")
    log(f"  {d.faces}: " + ", ".join(f"{c} ({k} x 25x25 PNG)" for c, k in d.counts.items()))
    log(f"  {d.photos}: {', '.join(p + '.png' for p in PHOTOS)}")
    for argv in demo_commands(out, weights=weights, cache_dir=cache_dir, train_size=train_size,
                              photo_size=photo_size, quiet=quiet):
        step(argv)
    report = out / "report" / "index.html"
    log(f"\ndemo finished in {time.perf_counter() - t_start:.1f} s")
    log(f"report: {report.resolve()}")
    return report
