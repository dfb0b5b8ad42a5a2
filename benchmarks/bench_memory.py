"""Row 6: peak memory does not grow with the number of images.

Each size runs in a fresh process (``python -m benchmarks.bench_memory --child ...``) so
that every peak is its own: ``gapsvm features`` over a folder of N distinct variants of the
real images into an empty cache (mode ``features``), and ``GapClassifier.explain`` over the
same folder (mode ``explain``: maps are reduced to CAMs as they arrive). The network input is
small (64x64 by default) so that 10,000 images fit the time; memory that grows per image
(maps, decoded images, cache entries) would show the same way at any input size, while the
fixed part (TensorFlow, the model, its activations) is what a bigger input size changes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import common

NAME = "memory"
#: Absolute ceiling for the peak resident memory of any run.
LIMIT_MB = 3.5 * 1024


def _child(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from gapsvm.core.scan import list_images
    from gapsvm.core.sizes import format_size, parse_input_size
    from gapsvm.network.backbone.build import get_backbone

    weights = None if args.weights == "none" else args.weights
    size = parse_input_size(args.input_size)
    bb = get_backbone("vgg16", weights, args.precision)
    paths = list_images(args.folder)
    t0 = time.perf_counter()
    if args.child == "features":
        from gapsvm import cli

        argv = ["features", args.folder, "--out", args.out, "--cache-dir", args.cache_dir,
                "--input-size", format_size(size), "--precision", args.precision, "-q",
                "--batch-size", str(args.batch_size), "--weights", args.weights]
        with common.silenced():
            status = cli.main(argv)
        if status != 0:
            raise SystemExit(f"gapsvm features exited with {status}")
    else:
        import numpy as np

        from gapsvm import GapClassifier

        clf = GapClassifier(weights=weights, input_size=size, precision=args.precision,
                            batch_size=args.batch_size, cache_dir=args.cache_dir)
        # Memory does not depend on what the head learned: any two-class head will do.
        k = min(len(paths), 40)
        clf.fit(paths[:k], np.arange(k) % 2)
        info = clf.explain(paths)
        assert len(info.cams) == len(paths)
    return {"peak_rss_mb": common.peak_rss_mb(), "seconds": time.perf_counter() - t0,
            "images": len(paths), "images_run": bb.images_run, "mode": args.child}


def measure(folder: Path, cache_dir: Path, mode: str, input_size: Any, precision: str,
            weights: Any, batch_size: int) -> dict[str, Any]:
    """Run one size in a fresh process and return its peak resident memory."""
    from gapsvm.core.sizes import format_size

    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--child", mode,
           "--folder", str(folder), "--cache-dir", str(cache_dir),
           "--out", str(cache_dir.parent / f"{folder.name}-{mode}.joblib"),
           "--input-size", format_size(input_size), "--precision", precision,
           "--weights", "none" if weights is None else str(weights),
           "--batch-size", str(batch_size)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(common.ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=common.ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(
    *,
    sizes: tuple[int, ...] = (1000, 5000),
    modes: tuple[str, ...] = ("features", "explain"),
    input_size: Any = (64, 64),
    precision: str = "bfloat16",
    weights: Any = "imagenet",
    batch_size: int = 16,
    kind: str = "all",
    workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Peak resident memory for each number of images, each in a fresh process.

    Parameters
    ----------
    sizes : tuple of int, default=(1000, 5000)
        Numbers of images (``--full`` adds 10000); the growth is from the first to the last.
    modes : tuple of str, default=("features", "explain")
    input_size : (h, w), default=(64, 64)
        Small, so that the largest size fits the time (see the module docstring).
    precision : {"float32", "bfloat16"}, default="bfloat16"
    weights : {"imagenet"} or None
    batch_size : int, default=16
    kind : str, default="all"
        Real images the variants are made from (all three kinds, mixed).
    workdir : path, optional

    Returns
    -------
    dict
    """
    from gapsvm.core.sizes import format_size

    sizes = tuple(sorted(sizes))
    results: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in modes}
    with contextlib.ExitStack() as stack:
        work = Path(workdir) if workdir else stack.enter_context(common.temp_dir())
        files = common.make_variants(common.real_images(kind), sizes[-1], work / "all", seed=6)
        for n in sizes:
            folder = work / f"n{n}"
            folder.mkdir()
            for f in files[:n]:
                dst = folder / Path(f).name
                try:
                    os.link(f, dst)
                except OSError:
                    dst.write_bytes(Path(f).read_bytes())
            for mode in modes:
                results[mode][n] = measure(folder, work / f"cache-{mode}-{n}", mode, input_size,
                                           precision, weights, batch_size)
    rows = []
    lo, hi = sizes[0], sizes[-1]
    for mode in modes:
        r = results[mode]
        growth = 100.0 * (r[hi]["peak_rss_mb"] - r[lo]["peak_rss_mb"]) / r[lo]["peak_rss_mb"]
        peaks = ", ".join(f"{n}: {r[n]['peak_rss_mb']:.0f} MB ({r[n]['seconds']:.0f} s)"
                          for n in sizes)
        what = "`gapsvm features`" if mode == "features" else "GapClassifier.explain"
        rows.append(common.row(
            f"6. peak RSS growth {lo} -> {hi} images, {what}", growth, at_most=10.0,
            fmt=".1f", unit="%",
            detail=f"{peaks}; fresh process each, input {format_size(input_size)}, "
            f"{precision}",
        ))
        top = max(v["peak_rss_mb"] for v in r.values())
        rows.append(common.row(
            f"6a. peak RSS, largest run, {what}", top, at_most=LIMIT_MB, fmt=".0f", unit=" MB",
            detail=f"{hi} images",
        ))
    return {"name": NAME, "rows": rows, "results": results}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: ``--child MODE ...`` measures one run (used by :func:`run`); without it,
    run the default sizes and print the rows."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", choices=["features", "explain"])
    p.add_argument("--folder")
    p.add_argument("--cache-dir")
    p.add_argument("--out")
    p.add_argument("--input-size", default="64x64")
    p.add_argument("--precision", default="bfloat16")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    if args.child:
        out = _child(args)
        print(json.dumps(out))
        return out
    out = run()
    return common.print_rows(out)


if __name__ == "__main__":
    main()
