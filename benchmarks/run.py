"""``make bench``: every speed and memory ratio of gapsvm, with its target and verdict.

Usage::

    python -m benchmarks.run            # the default table (under 20 minutes on 2 quiet cores)
    python -m benchmarks.run --quick    # smaller sizes, for a first look (a few minutes)
    python -m benchmarks.run --full     # adds 10,000 images and the pipeline comparison
    python -m benchmarks.run --only precision,cam --markdown table.md --json results.json

Each figure is a ratio of two timings taken in this run on the same images (see
``benchmarks/README.md`` for what each row measures and why). The exit status is 0 when every
row with a target passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import sys
import time
import traceback
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BENCHES = ("pipeline", "precision", "cache", "search", "cam", "memory", "distributed",
           "startup", "backbones")


def plan(mode: str) -> dict[str, list[dict[str, Any]]]:
    """The keyword arguments of each benchmark's ``run`` in ``mode`` (quick, default, full).

    Returns
    -------
    dict
        Benchmark name -> list of keyword-argument dicts (one call each).
    """
    quick, full = mode == "quick", mode == "full"
    reps = 2 if quick else 3
    return {
        "pipeline": [
            # float32 is the default precision; bfloat16 is the hard case for the pipeline
            # (the network is six times faster, the decoding is not).
            {"precision": "float32", "n_images": 32 if quick else 96, "repeats": reps,
             "native": False},
            # Native size: the 64 photos keep their sizes (40 panoramas, 24 assorted).
            {"precision": "bfloat16", "n_images": 96 if quick else 192, "repeats": reps,
             "native": True, "n_native": 24 if quick else 64, "strategies": full},
        ],
        "precision": [{"repeats": reps, "n_accuracy": 200 if quick else None,
                       "n_cam_photos": 8 if quick else None}],
        "cache": [{"n_images": 48 if quick else 96, "separate_process": not quick}],
        "search": [{"n_images": 200 if quick else None}],
        "cam": [{"n_images": 16 if quick else 48, "repeats": 2 if quick else 3}],
        # With rows 6b/6c: `gapsvm cam` at native size with 4000x3000 photos and 1x20000 strips.
        "memory": [{"sizes": (200, 1000) if quick else
                    ((1000, 5000, 10000) if full else (1000, 5000)),
                    "cam": {"n_small": 4 if quick else 8, "n_large": 1 if quick else 2}}],
        "distributed": [{}],
        "startup": [{"repeats": 3 if quick else 5}],
        # Information rows: every registry backbone's throughput against VGG16's.
        "backbones": [{"warmup": 1 if quick else 2, "batches": 3 if quick else 6}],
    }


def run_distributed() -> dict[str, Any]:
    """Call ``benchmarks.bench_distributed.main()`` when it and dask are installed."""
    from . import common

    if importlib.util.find_spec("benchmarks.bench_distributed") is None:
        return {"rows": [], "note": "benchmarks/bench_distributed.py is not present: skipped"}
    if importlib.util.find_spec("dask") is None or importlib.util.find_spec("distributed") is None:
        return {"rows": [], "note": "dask is not installed (pip install 'gapsvm[dask]'): "
                "the distributed benchmark was skipped"}
    mod = importlib.import_module("benchmarks.bench_distributed")
    out = mod.main()
    if not isinstance(out, dict):
        return {"rows": [], "note": f"bench_distributed.main() returned {type(out).__name__}"}
    if isinstance(out.get("rows"), list):
        for r in out["rows"]:
            if not re.match(r"\d+[a-z]?\. ", r["name"]):
                r["name"] = f"7. distributed: {r['name']}"
        return out
    # Its own format: show every scalar figure as an information row.
    rows = [common.row(f"7. distributed: {k}", float(v), fmt=".3f")
            for k, v in out.items()
            if isinstance(v, int | float) and not isinstance(v, bool)]
    return {**out, "rows": rows}


def verdict(r: dict[str, Any]) -> str:
    """PASS, FAIL, ``n/a`` (not measured) or ``info`` (no target)."""
    if r["value"] is None:
        return "n/a"
    if r["passed"] is None:
        return "info"
    return "PASS" if r["passed"] else "FAIL"


def format_table(rows: list[dict[str, Any]]) -> str:
    """The terminal table: one line per figure, its detail indented below."""
    w = max(len(r["name"]) for r in rows) if rows else 10
    lines = [f"{'measure':<{w}}  {'value':>10}  {'target':<12}  result", "-" * (w + 36)]
    for r in rows:
        lines.append(f"{r['name']:<{w}}  {r['text']:>10}  {r['target']:<12}  {verdict(r)}")
        if r["detail"]:
            lines.append(f"{'':<4}{r['detail']}")
    return "\n".join(lines)


def format_markdown(rows: list[dict[str, Any]], machine: dict[str, Any], mode: str,
                    minutes: float) -> str:
    """The same table in Markdown, headed by the machine it ran on."""
    m = machine
    bf16 = "AMX" if m["amx_bf16"] else ("AVX512-BF16" if m["avx512_bf16"] else "none")
    load = m.get("load_average")
    flag = "" if mode == "default" else f" --{mode}"
    head = [
        f"Measured {m['date']} with `python -m benchmarks.run{flag}`"
        f" ({minutes:.1f} min): {m['cpu']} ({m.get('cpu_signature') or 'no signature'}), "
        f"{m['cores']} cores (bfloat16 hardware: {bf16}); "
        f"Python {m['python']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}, NumPy "
        f"{m['numpy']}, scikit-learn {m['scikit-learn']}"
        + (f"; load average at start {load[0]:.1f}" if load else "") + ".",
        "",
        "| measure | value | target | result | detail |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for r in rows:
        name, detail = (r[k].replace("|", "\\|") for k in ("name", "detail"))
        head.append(f"| {name} | {r['text']} | {r['target']} | {verdict(r)} | {detail} |")
    return "\n".join(head) + "\n"


def _parse(argv: list[str] | None) -> tuple[argparse.Namespace, str, list[str]]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    g.add_argument("--full", action="store_true",
                   help="also 10,000 images and the input-pipeline comparison")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHES)}")
    p.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    p.add_argument("--json", metavar="FILE", help="also write every raw figure as JSON")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else ("full" if args.full else "default")
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(only) - set(BENCHES)
    if unknown:
        p.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {', '.join(BENCHES)}")
    return args, mode, only


def _print_machine(machine: dict[str, Any], mode: str) -> None:
    from . import common

    _, label = common.bf16_target()
    print(f"gapsvm benchmarks ({mode}) on {machine['cpu']} ({machine['cpu_signature']}), "
          f"{machine['cores']} cores; "
          f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, NumPy "
          f"{machine['numpy']}; {machine['date']}", flush=True)
    print(f"bfloat16 hardware: {label}", flush=True)
    if machine.get("load_average"):
        print(f"load average {machine['load_average'][0]:.1f} on {machine['cores']} cores "
              "(ratios are taken within the run; a busy machine still adds noise)", flush=True)


def _run_one(name: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Run one benchmark call and print its rows; returns (its output, whether it ran)."""
    from . import common

    t0 = time.perf_counter()
    print(f"\n== {name} {kwargs} ...", flush=True)
    ran = True
    try:
        if name == "distributed":
            out = run_distributed()
        else:
            out = importlib.import_module(f"benchmarks.bench_{name}").run(**kwargs)
    except Exception as exc:  # one broken benchmark must not hide the others
        traceback.print_exc()
        ran = False
        out = {"rows": [common.row(f"{name}: did not run", None,
                                   detail=f"{type(exc).__name__}: {exc}")]}
    if out.get("note"):
        print(f"   note: {out['note']}", flush=True)
    for r in out.get("rows", []):
        print(f"   {r['name']}: {r['text']} {r['target']} [{verdict(r)}]", flush=True)
    print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out, ran


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the table; returns the exit status."""
    args, mode, only = _parse(argv)

    from . import common

    machine = common.machine_info()
    _print_machine(machine, mode)
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {"machine": machine, "mode": mode}
    failed_to_run = []
    for name, calls in plan(mode).items():
        if only and name not in only:
            continue
        for kwargs in calls:
            out, ran = _run_one(name, kwargs)
            if not ran:
                failed_to_run.append(name)
            rows.extend(out.get("rows", []))
            raw.setdefault(name, []).append(
                {k: v for k, v in out.items() if k != "rows"} | {"rows": out.get("rows", [])})
    minutes = (time.perf_counter() - t_start) / 60
    print("\n" + format_table(rows))
    n_fail = sum(1 for r in rows if r["passed"] is False)
    n_pass = sum(1 for r in rows if r["passed"] is True)
    print(f"\n{n_pass} passed, {n_fail} failed, "
          f"{sum(1 for r in rows if verdict(r) in ('info', 'n/a'))} without a target "
          f"({minutes:.1f} min)")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(format_markdown(rows, machine, mode, minutes))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(raw, fh, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist")
                      else str(o))
    return 1 if n_fail or failed_to_run else 0


if __name__ == "__main__":
    sys.exit(main())
