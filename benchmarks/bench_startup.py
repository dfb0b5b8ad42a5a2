"""Start-up of the command line: how long ``gapsvm`` takes before it does anything.

``gapsvm --help``, ``gapsvm train --help``, ``gapsvm weights info`` and a usage error (an
unknown option) never build a network, so they must not load TensorFlow, scikit-learn or
OpenCV. Each is run as a fresh process, ``repeats`` times, and its median wall time is
divided by that of ``python -c pass`` measured in the same run (the interpreter's own
start-up), so a slower or busier machine scales both. A command that loads TensorFlow shows
up here as a ratio near a hundred.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import common

#: Start-up / ``python -c pass`` a command must stay under: room for numpy (``weights info``
#: reads the backbone registry), none for scikit-learn, far less TensorFlow.
TARGET = 15.0

#: The commands measured: (row label, arguments).
COMMANDS = (
    ("`gapsvm --help`", ["--help"]),
    ("`gapsvm train --help`", ["train", "--help"]),
    ("`gapsvm weights info`", ["weights", "info"]),
    ("usage error (`gapsvm features x --bogus`)", ["features", "x", "--bogus"]),
)


def gapsvm_command() -> list[str]:
    """The console script beside this interpreter, else ``python -m gapsvm.cli``."""
    exe = Path(sys.executable).with_name("gapsvm")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "gapsvm.cli"]


def median_seconds(argv: list[str], repeats: int) -> float:
    """The median wall time of ``repeats`` fresh runs of ``argv`` (output discarded)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(repeats: int = 5) -> dict[str, Any]:
    """Rows ``8. start-up``: each command's median start-up over ``python -c pass``'s."""
    base = median_seconds([sys.executable, "-c", "pass"], repeats)
    exe = gapsvm_command()
    rows, seconds = [], {"python -c pass": base}
    for label, args in COMMANDS:
        t = median_seconds([*exe, *args], repeats)
        seconds[label] = t
        rows.append(common.row(
            f"8. start-up {label} / `python -c pass`", t / base, at_most=TARGET, fmt=".1f",
            unit="x", detail=f"{t:.3f} s vs {base:.3f} s, median of {repeats} fresh processes",
        ))
    return {"rows": rows, "seconds": seconds}


def main() -> dict[str, Any]:
    """``python -m benchmarks.bench_startup``."""
    return common.print_rows(run())


if __name__ == "__main__":
    main()
