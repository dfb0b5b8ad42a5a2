"""Row 3: a cached re-run of ``gapsvm features`` against the first run over the same folder.

Both runs are the whole command in this process (backbone already built, as in a notebook or
a long-lived service); the first fills an empty cache, the second finds every image in it
and only reads, hashes and looks up. Separate processes add interpreter, TensorFlow and
model start-up (a few seconds) to both runs; with ``separate_process=True`` (as ``make
bench`` runs it) the row's detail shows those wall times too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import common
from .bench_pipeline import _cli_features

NAME = "cache"


def _subprocess_features(folder: Path, out: Path, cache_dir: Path, input_size: Any,
                         precision: str, weights: Any) -> float:
    from gapsvm.core.sizes import format_size

    cmd = [sys.executable, "-m", "gapsvm.cli", "features", str(folder), "--out", str(out),
           "--cache-dir", str(cache_dir), "--input-size", format_size(input_size),
           "--precision", precision, "-q",
           "--weights", "none" if weights is None else str(weights)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def run(
    *,
    n_images: int = 96,
    input_size: Any = (224, 224),
    precision: str = "bfloat16",
    weights: Any = "imagenet",
    batch_size: int = 16,
    kind: str = "photos",
    separate_process: bool = False,
    workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Time a cached re-run against the first run over the same folder.

    Parameters
    ----------
    n_images : int, default=96
        Distinct variants of the real images.
    input_size : (h, w), default=(224, 224)
    precision : {"float32", "bfloat16"}, default="bfloat16"
        bfloat16 makes the first run fast, so the re-run's share is the larger (harder) one.
    weights : {"imagenet"} or None
    batch_size : int, default=16
    kind : str, default="photos"
    separate_process : bool, default=False
        Also time both runs as separate ``gapsvm features`` processes (information only).
    workdir : path, optional

    Returns
    -------
    dict
    """
    from gapsvm.core.sizes import format_size
    from gapsvm.network.backbone.build import get_backbone

    bb = get_backbone("vgg16", weights, precision)
    with contextlib.ExitStack() as stack:
        work = Path(workdir) if workdir else stack.enter_context(common.temp_dir())
        folder = work / "images"
        common.make_variants(common.real_images(kind), n_images, folder, seed=3)
        bb(common.batches_of(common.decode_all(sorted(folder.iterdir())[:1], input_size), 1)[0])
        before = bb.images_run
        first = _cli_features(folder, work / "a.joblib", work / "cache", input_size, precision,
                              weights, batch_size)
        computed = bb.images_run - before
        again = _cli_features(folder, work / "b.joblib", work / "cache", input_size, precision,
                              weights, batch_size)
        recomputed = bb.images_run - before - computed
        ratio = again / first
        detail = (f"{again:.2f} s vs {first:.2f} s for {n_images} {kind} variants at "
                  f"{format_size(input_size)}, {precision}; network passes {computed} then "
                  f"{recomputed}")
        out: dict[str, Any] = {"name": NAME, "first": first, "again": again,
                               "computed": computed, "recomputed": recomputed}
        if separate_process:
            p1 = _subprocess_features(folder, work / "c.joblib", work / "cache-p", input_size,
                                      precision, weights)
            p2 = _subprocess_features(folder, work / "d.joblib", work / "cache-p", input_size,
                                      precision, weights)
            out.update(process_first=p1, process_again=p2)
            detail += f"; as separate processes {p2:.1f} s vs {p1:.1f} s (start-up included)"
    out["rows"] = [common.row(
        "3. cached re-run / first run, same folder", ratio, at_most=0.05, fmt=".3f",
        detail=detail,
    )]
    return out


def main() -> dict[str, Any]:
    """Run with the defaults and print the rows."""
    out = run(separate_process=True)
    return common.print_rows(out)


if __name__ == "__main__":
    main()
