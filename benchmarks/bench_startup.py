"""Start-up of the command line: how long ``gapsvm`` takes before it does anything.

``gapsvm --help``, ``gapsvm train --help``, ``gapsvm weights info`` and a usage error (an
unknown option) never build a network, so they must not load TensorFlow, scikit-learn or
OpenCV. Each is run as a fresh process, ``repeats`` times, and its median wall time is
divided by that of ``python -c pass`` measured in the same run (the interpreter's own
start-up), so a slower or busier machine scales both. A command that loads TensorFlow shows
up here as a ratio near a hundred.

``gapsvm train`` and ``gapsvm report`` need scikit-learn, whose import alone takes about a
second; what they must not do is keep the user waiting for that before saying what they
read. Their rows time the first line each prints: train's on a small synthetic features
file, report's (on standard error, before the model loads) on a folder of three images.
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

#: First line of ``gapsvm train`` or ``report`` / ``python -c pass``: numpy and joblib to read
#: the features file, or numpy to scan the folder; not scikit-learn.
FIRST_LINE_TARGET = 20.0

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


def median_first_line(argv: list[str], repeats: int, *, stderr: bool = False,
                      finish: bool = True) -> float:
    """The median time from launching ``argv`` to its first line on standard output (or
    error); the process is then left to finish, or killed when ``finish`` is False."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with subprocess.Popen(argv, stdout=subprocess.DEVNULL if stderr else subprocess.PIPE,
                              stderr=subprocess.PIPE if stderr else subprocess.DEVNULL) as p:
            stream = p.stderr if stderr else p.stdout
            assert stream is not None
            stream.readline()
            times.append(time.perf_counter() - t0)
            if finish:
                stream.read()
            else:
                p.kill()
    return statistics.median(times)


def synthetic_features_file(folder: Path) -> Path:
    """A two-class features file of random GAP vectors, as ``gapsvm features`` writes it."""
    import numpy as np

    from gapsvm.network.features_file import write_features_file
    from gapsvm.network.featurizer import features_metadata

    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b"], 50)
    backbone = {"backbone": "vgg16", "layer": "block5_conv3", "stride": 16,
                "weights": {"name": "random(seed=0)", "sha256": "0" * 64},
                "precision": "float32"}
    path = folder / "features.joblib"
    write_features_file(path, {
        "X": rng.random((len(y), 512), dtype=np.float32), "y": y, "class_names": ["a", "b"],
        "paths": [f"{c}/{i}.png" for i, c in enumerate(y)], "data_dir": str(folder),
        "errors": [], "meta": features_metadata(backbone, (128, 64)),
    })  # fmt: skip
    return path


def three_images(folder: Path) -> Path:
    """A flat folder of three small PNG images."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (64, 64, 3), np.uint8))
    return folder


def run(repeats: int = 5) -> dict[str, Any]:
    """Rows ``8. start-up``: each command's median start-up over ``python -c pass``'s, and
    the time to the first line of ``gapsvm train`` and ``gapsvm report``."""
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
    with common.temp_dir() as d:
        feats = synthetic_features_file(d)
        argv = [*exe, "train", str(feats), "--out", str(d / "m.skops"), "--cv", "2"]
        first = median_first_line(argv, repeats)
        whole = median_seconds(argv, repeats)
        report = median_first_line(
            [*exe, "report", str(d / "m.skops"), str(three_images(d / "images")), "--out",
             str(d / "report")], repeats, stderr=True, finish=False)
    seconds["`gapsvm train` first line"] = first
    seconds["`gapsvm train` whole run"] = whole
    seconds["`gapsvm report` first line"] = report
    rows.append(common.row(
        "8. start-up `gapsvm train` (100 vectors), first line / `python -c pass`", first / base,
        at_most=FIRST_LINE_TARGET, fmt=".1f", unit="x",
        detail=f"{first:.3f} s vs {base:.3f} s, median of {repeats}; the whole run "
               f"(scikit-learn, cross-validation, save) {whole:.2f} s",
    ))
    rows.append(common.row(
        "8. start-up `gapsvm report` (3 images), first line / `python -c pass`", report / base,
        at_most=FIRST_LINE_TARGET, fmt=".1f", unit="x",
        detail=f"{report:.3f} s vs {base:.3f} s, median of {repeats}; the run is stopped "
               "there (the rest is loading the model and computing features)",
    ))
    return {"rows": rows, "seconds": seconds}


def main() -> dict[str, Any]:
    """``python -m benchmarks.bench_startup``."""
    return common.print_rows(run())


if __name__ == "__main__":
    main()
