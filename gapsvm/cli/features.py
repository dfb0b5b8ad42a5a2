"""``gapsvm features``: a folder of images to one features file (cached per image)."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from typing import Any

from gapsvm.cli._common import CLIError, add_featurizer_flags, verbose

#: Where :func:`precision_hint` reads the CPU's flags (tests point it at a fake file).
CPUINFO = "/proc/cpuinfo"


def precision_hint(precision: str, cpuinfo: str | os.PathLike = CPUINFO) -> str | None:
    """The one-line hint to switch to bfloat16, or None when it would not help.

    Given only for ``float32`` on a CPU with native bfloat16 compute (AMX or AVX512-BF16,
    from the flags in ``cpuinfo``); elsewhere bfloat16 is emulated and no faster.
    """
    from gapsvm.utils.cpu import bf16_hardware, cpu_flags

    hardware = bf16_hardware(cpu_flags(cpuinfo)) if precision == "float32" else None
    if hardware is None:
        return None
    return (f"hint: bfloat16 is faster on this CPU ({hardware}; see benchmarks/README.md): "
            "--precision bfloat16")


def add_parser(sub: Any) -> None:
    """Register ``features`` on the subcommand action ``sub``."""
    p = sub.add_parser("features", help="compute GAP features of a folder of images")
    p.add_argument("data_dir", help="folder with one sub-folder per class, or a flat folder")
    p.add_argument("--out", default="features.joblib", help="the features file to write")
    add_featurizer_flags(p, fit_defaults=False)
    p.add_argument("--errors", metavar="CSV", help="write unreadable files and reasons here "
                   "(default: listed on standard error only)")
    p.add_argument("--no-maps", action="store_true",
                   help="cache only the vectors, not the maps CAMs need")
    dist = p.add_argument_group("distributed extraction (needs gapsvm[dask]; see the README)")
    where = dist.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on this Dask scheduler (tcp://host:8786); --cache-dir must be "
                            "on storage every worker sees (default: no Dask, run here)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="start a local Dask cluster of N worker processes for this run "
                            "(TensorFlow threads: cores / N each; default: no Dask, run here)")
    dist.add_argument("--chunk-size", type=int, default=64,
                      help="images per Dask task (default 64)")
    p.set_defaults(handler=cmd_features)


def write_errors_csv(path: str | os.PathLike, errors: list[dict[str, str]]) -> None:
    """``--errors``: one ``path,reason`` row per file, written atomically.

    Written even when empty, so a script can tell "no errors" from "did not run".
    """
    from gapsvm.utils.atomic import atomic_write

    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "reason"])
        w.writeheader()
        w.writerows(errors)


def _extract_on_dask(fz: Any, paths: list[str], args: argparse.Namespace) -> tuple[Any, float]:
    """``--scheduler`` / ``--workers``: the same extraction, sharded over a Dask cluster."""
    from gapsvm.network.distributed import dask_client, extract_distributed, warm_up_workers

    try:
        with dask_client(args.scheduler, args.workers) as client:
            warm_up_workers(fz, client)  # builds each worker's backbone: the rate is compute only
            t0 = time.perf_counter()
            res = extract_distributed(fz, paths, client, chunk_size=args.chunk_size,
                                      on_error="skip")
            return res, time.perf_counter() - t0
    except (ImportError, ConnectionError) as exc:
        raise CLIError(str(exc)) from None


def _extract(paths: list[str], args: argparse.Namespace) -> tuple[Any, dict[str, Any], float]:
    """(extraction result, featurizer metadata, seconds), here or on Dask."""
    from gapsvm.network.featurizer import GapFeaturizer

    fz = GapFeaturizer(
        backbone=args.backbone, weights=args.weights, input_size=args.input_size,
        precision=args.precision, batch_size=args.batch_size, cache_dir=args.cache_dir,
        cache_maps=not args.no_maps, verbose=verbose(args),
    )
    if args.scheduler is not None or args.workers is not None:
        res, elapsed = _extract_on_dask(fz, paths, args)
        return res, res.metadata, elapsed
    fz.fit()
    t0 = time.perf_counter()
    res = fz.extract(paths, on_error="skip")
    return res, fz.metadata(), time.perf_counter() - t0


def _print_summary(res: Any, out: str, elapsed: float, y: Any, class_names: Any) -> None:
    import numpy as np

    n_ok = int(res.ok.sum())
    rate = res.n_computed / elapsed if res.n_computed and elapsed > 0 else float("nan")
    print(
        f"{n_ok} images -> {out} ({res.n_computed} computed, {n_ok - res.n_computed} "
        f"from cache, {elapsed:.1f} s" + (f", {rate:.1f} img/s computed" if res.n_computed else "")
        + ")"
    )
    if class_names:
        counts = {c: int(np.sum(y == c)) for c in class_names}
        print("classes: " + ", ".join(f"{c} ({n})" for c, n in counts.items()))


def cmd_features(args: argparse.Namespace) -> int:
    """`gapsvm features`: a folder of images to one features file (cached per image)."""
    from gapsvm.core.output import safe_relpath
    from gapsvm.core.scan import ScanProblem, load_directory
    from gapsvm.network.features_file import short_key, write_features_file

    problems: list[ScanProblem] = []
    paths, labels, class_names = load_directory(args.data_dir, problems)
    hint = None if args.quiet else precision_hint(args.precision, CPUINFO)
    if hint:  # once per run, before the long part; -q asks for errors only
        print(f"gapsvm features: {hint}", file=sys.stderr)
    res, meta, elapsed = _extract(paths, args)
    ok = res.ok
    root = os.path.abspath(args.data_dir)
    errors = [{"path": safe_relpath(e.path, root), "reason": e.reason}
              for e in [*problems, *res.errors]]
    rel = [safe_relpath(p, root) for p in paths]
    payload = {
        "X": res.gap if ok.all() else res.gap[ok],  # no copy of 2 KB per image when all read
        "y": None if labels is None else labels[ok],
        "class_names": class_names,
        "paths": [r for r, k in zip(rel, ok, strict=True) if k],
        "keys": [short_key(k) for k, o in zip(res.keys, ok, strict=True) if o],
        "image_hw": [hw for hw in res.image_hw if hw is not None],
        "data_dir": root,
        "errors": errors,
        "meta": meta,
    }
    if ok.any():
        write_features_file(args.out, payload)
    _print_summary(res, args.out, elapsed, payload["y"], class_names)
    if args.errors:
        write_errors_csv(args.errors, errors)
    if errors:
        print(f"{len(errors)} file(s) skipped:", file=sys.stderr)
        for e in errors:
            print(f"  {e['path']}: {e['reason']}", file=sys.stderr)
    if not ok.any():
        raise CLIError(f"no usable image in {args.data_dir!r}; nothing written")
    return 1 if errors and args.strict else 0
