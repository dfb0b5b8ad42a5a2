"""Scale-out: feature extraction on 2 single-threaded Dask workers against 1.

Both clusters are ``LocalCluster``s of worker processes whose TensorFlow is limited to one
intra-op and one inter-op thread (``TF_NUM_INTRAOP_THREADS=1``, ``TF_NUM_INTEROP_THREADS=1``
in the worker environment, set before TensorFlow starts); the bench checks that this took
effect by counting the threads that do the work of a forward pass in each worker. Both run
the same images at the same input size, each run into a fresh feature cache (so every image
is computed and written, as in a real first run); backbones are built and traced before the
clock starts. Target: 2 workers >= 1.8x faster than 1.

On a 2-core machine a single unpinned process already uses both cores, so the bench also
prints that figure beside the others: here, 2 workers can only match it. The real gain is
across machines: each added machine adds its own cores, and the per-worker rate printed here
is what each contributes.

Run: ``python -m benchmarks.bench_distributed [--images 400] [--size 128x64] [--repeats 2]``
(``--images 40 --repeats 1`` is a quick mode). From a runner: ``run(n_images=...)`` returns
the rows; ``main()`` prints them and returns the same dict.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import common

NAME = "distributed"


def _cpu_seconds() -> float:
    """CPU time this process has used (run in each worker)."""
    t = os.times()
    return t.user + t.system


def _timed_dask(client: Any, fz: Any, paths: list[str], chunk_size: int, tmp: str) -> tuple:
    """Wall time, result and the workers' CPU seconds of one run into a fresh cache."""
    from gapsvm.network.distributed import extract_distributed

    fz.set_params(cache_dir=tmp)
    before = client.run(_cpu_seconds)
    t, res = common.time_call(
        lambda: extract_distributed(fz, paths, client, chunk_size=chunk_size)
    )
    after = client.run(_cpu_seconds)
    return t, res, sum(after[a] - before[a] for a in after)


def run(
    n_images: int = 400,
    input_size: str = "128x64",
    *,
    batch_size: int = 16,
    chunk_size: int = 16,
    repeats: int = 2,
) -> dict[str, Any]:
    """Time 1 and 2 single-threaded workers (and one unpinned process) on the same images.

    Parameters
    ----------
    n_images : int, default=400
        INRIA crops, taken evenly from both classes (at most 800).
    input_size : str, default="128x64"
        As on the command line (``128x64`` is the crops' own size).
    batch_size, chunk_size : int, default=16
        Network batch and images per Dask task (the same batches everywhere).
    repeats : int, default=2
        Back-to-back (1 worker, 2 workers) pairs, in alternating order; the median pair
        ratio is reported.

    Returns
    -------
    dict
        ``rows`` (see :func:`benchmarks.common.row`) and the raw figures.
    """
    from gapsvm.core.scan import list_images
    from gapsvm.core.sizes import format_size, parse_input_size

    size = parse_input_size(input_size)
    root = common.shared_data_dir() / "persons" / "train"
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark data not found at {root}")
    every = list_images(root)
    if not 1 <= n_images <= len(every):
        raise ValueError(f"n_images must be in 1..{len(every)}, got {n_images}")
    idx = np.linspace(0, len(every) - 1, n_images).round().astype(int)
    paths = [every[i] for i in idx]
    m = _measure(paths, size, batch_size, chunk_size, repeats)
    t_one, t_two = m["t_one"], m["t_two"]
    speedup = float(np.median(np.asarray(t_one) / np.asarray(t_two)))
    per_worker = common.rate(n_images, float(np.median(t_one)))
    # CPU seconds per image do not depend on how busy the machine is: equal figures mean
    # sharding costs nothing, and 2 workers with 2 free cores would be 2x as fast.
    cpu_one = float(np.median(m["cpu"]["one"])) / n_images
    cpu_two = float(np.median(m["cpu"]["two"])) / n_images
    cores = os.cpu_count() or 1
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    size_txt = format_size(size)
    return {
        "name": NAME,
        "rows": _rows(m, n_images, size_txt, repeats, speedup, cpu_one, cpu_two, cores, load),
        "speedup": speedup,
        "seconds_one": t_one,
        "seconds_two": t_two,
        "seconds_single": m["t_single"],
        "cpu_ms_per_image_one": 1000 * cpu_one,
        "cpu_ms_per_image_two": 1000 * cpu_two,
        "rate_per_worker": per_worker,
        "rate_single_process": common.rate(n_images, m["t_single"]),
        "worker_tf_threads": m["worker_threads"],
        "single_tf_threads": m["single_threads"],
        "identical": m["identical"],
        "n_images": n_images,
        "input_size": size_txt,
        "machine": {"cpu": common.cpu_model(), "cores": cores, "load_average": load},
    }


def _measure(paths: list[str], size: Any, batch_size: int, chunk_size: int,
             repeats: int) -> dict[str, Any]:
    """Time 1 and 2 pinned workers and this (unpinned) process on ``paths``, each run into a
    fresh cache, in alternating order; count the threads that do the work."""
    import distributed

    from gapsvm.network.dask_cluster import local_cluster
    from gapsvm.network.distributed import tf_busy_threads, warm_up_workers, worker_params
    from gapsvm.network.featurizer import GapFeaturizer

    params = dict(input_size=size, batch_size=batch_size, verbose=0)
    # The unpinned single process: this one, TensorFlow on every core.
    single = GapFeaturizer(cache_dir=None, **params).fit()
    single.extract(paths[:batch_size])  # trace before timing, cache nothing
    p = worker_params(single.get_params(), size)
    m: dict[str, Any] = {"single_threads": tf_busy_threads(p), "t_one": [], "t_two": [],
                         "cpu": {"one": [], "two": []}}
    results, t_single = {}, []
    quiet = {"silence_logs": logging.ERROR}
    with common.temp_dir() as tmp, local_cluster(1, tf_threads=1, **quiet) as c1, \
            local_cluster(2, tf_threads=1, **quiet) as c2, distributed.Client(c1) as one, \
            distributed.Client(c2) as two:
        two.wait_for_workers(2)
        fz = GapFeaturizer(cache_dir=None, **params)
        for c in (one, two):
            warm_up_workers(fz, c)
        m["worker_threads"] = sorted({
            *one.run(tf_busy_threads, p).values(), *two.run(tf_busy_threads, p).values()
        })
        for r in range(repeats):
            # Alternate the order, so a load that drifts over the minute favours neither.
            for which in ("one", "two") if r % 2 == 0 else ("two", "one"):
                t, results[which], used = _timed_dask(
                    one if which == "one" else two, fz, paths, chunk_size,
                    str(tmp / f"{which}{r}"),
                )
                m[f"t_{which}"].append(t)
                m["cpu"][which].append(used)
            # Into a fresh cache too: the same writes as the workers do.
            single.set_params(cache_dir=str(tmp / f"single{r}"))
            t, results["single"] = common.time_call(lambda: single.extract(paths))
            t_single.append(t)
    m["t_single"] = float(np.median(t_single))
    m["identical"] = all(np.array_equal(results[k].gap, results["single"].gap)
                         for k in ("one", "two"))
    return m


def _rows(m: dict[str, Any], n_images: int, size_txt: str, repeats: int, speedup: float,
          cpu_one: float, cpu_two: float, cores: int, load: Any) -> list[dict[str, Any]]:
    t_one, t_two, t_single = m["t_one"], m["t_two"], m["t_single"]
    r_one = common.rate(n_images, float(np.median(t_one)))
    r_two = common.rate(n_images, float(np.median(t_two)))
    r_single = common.rate(n_images, t_single)
    single_threads, worker_threads = m["single_threads"], m["worker_threads"]
    return [
        common.row(
            f"2 vs 1 single-threaded Dask workers, {n_images} images {size_txt}", speedup,
            at_least=1.8, fmt=".2f", unit="x",
            detail=f"1 worker {np.median(t_one):.1f} s ({r_one:.1f} img/s), 2 workers "
                   f"{np.median(t_two):.1f} s ({r_two:.1f} img/s); {repeats} pair(s); the "
                   f"workers got {r_one * cpu_one:.2f} and {r_two * cpu_two:.2f} cores of CPU "
                   f"(the rest went to other jobs); {common.cpu_model()}, {cores} cores, "
                   f"load {tuple(round(v, 2) for v in load) if load else None}",
        ),
        common.row(
            "CPU time per image, 2 workers / 1 worker", cpu_two / cpu_one, at_most=1.1,
            fmt=".2f", unit="x",
            detail=f"{1000 * cpu_one:.1f} ms vs {1000 * cpu_two:.1f} ms of worker CPU per image:"
                   " the work sharding adds, independent of other load on the machine",
        ),
        common.row(
            "TensorFlow threads doing the work in each worker", float(max(worker_threads)),
            equals=1.0, fmt=".0f",
            detail=f"counted per worker: {worker_threads}; in the unpinned process: "
                   f"{single_threads}",
        ),
        common.row(
            "features identical to the single-process run", float(m["identical"]), equals=1.0,
            fmt=".0f", detail="bit for bit, 1- and 2-worker runs",
        ),
        common.row(
            "unpinned single process (for comparison)", r_single, fmt=".1f", unit=" img/s",
            detail=f"{t_single:.1f} s, TensorFlow on {single_threads} threads: on {cores} "
                   "cores 2 pinned workers can only match this; the gain is across machines",
        ),
        common.row(
            "per single-threaded worker", r_one, fmt=".1f", unit=" img/s",
            detail=f"1M images on 100 such workers: {1e6 / (100 * r_one) / 3600:.1f} h "
                   "(if the shared storage keeps up)",
        ),
    ]


def main(argv: Sequence[str] = ()) -> dict[str, Any]:
    """Parse ``argv`` (default: none, so a runner's own arguments are not read), run, print
    one line per row, and return :func:`run`'s dict."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_distributed")
    ap.add_argument("--images", type=int, default=400, help="images (40 for a quick run)")
    ap.add_argument("--size", default="128x64", help="input size, as on the command line")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    out = run(args.images, args.size, repeats=args.repeats)
    for r in out["rows"]:
        verdict = "" if r["passed"] is None else ("PASS" if r["passed"] else "FAIL")
        print(f"{r['name']}: {r['text']} {r['target']} {verdict} ({r['detail']})".rstrip())
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
