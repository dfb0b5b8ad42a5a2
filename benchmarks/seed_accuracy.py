"""The original post's task, reproduced: person / not-person on INRIA crops, frozen VGG16,
a linear head on GAP features. Prints 5-fold and 80/20 accuracy for LinearSVC and
LogisticRegression at each input size, and the time from features to a trained model.

Run: ``python -m benchmarks.seed_accuracy [--data DIR] [--sizes 128x64,224x224]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.svm import LinearSVC

from gapsvm.network.features_file import read_features_file

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU model name as lscpu prints it."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return "unknown CPU"


def run(data: Path, sizes: list[str], cache_dir: Path) -> list[dict]:
    """Extract features with the CLI (as a user would), then score the two heads."""
    from gapsvm.cli.main import main

    rows = []
    heads = {
        "LinearSVC": LinearSVC(max_iter=10000),
        "LogisticRegression": LogisticRegression(max_iter=5000),
    }
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            feats = Path(tmp) / "f.joblib"
            model = Path(tmp) / "m.skops"
            t0 = time.perf_counter()
            main(["features", str(data), "--input-size", size, "--out", str(feats),
                  "--cache-dir", str(cache_dir), "-q"])
            t_feat = time.perf_counter() - t0
            main(["train", str(feats), "--out", str(model), "--cv", "0"])
            t_total = time.perf_counter() - t0
            d = read_features_file(feats)
        X, y = d["X"], d["y"]
        for name, head in heads.items():
            cv = cross_val_score(head, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
            split = float(np.mean(head.fit(Xtr, ytr).predict(Xte) == yte))
            rows.append({"size": size, "head": name, "cv_mean": float(cv.mean()),
                         "cv_std": float(cv.std()), "split_80_20": split,
                         "features_s": t_feat, "features_to_model_s": t_total})
    return rows


def main() -> None:
    """Command-line entry."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/persons/train")
    p.add_argument("--sizes", default="128x64,224x224")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="feature cache (default: a fresh temporary folder, so times are cold)")
    a = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(a.data, a.sizes.split(","), a.cache_dir or Path(tmp))
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} cores")
    print(f"{'input':>8} {'head':<19} {'5-fold':>15} {'80/20':>7} {'features':>9} "
          f"{'feat->model':>11}")
    for r in rows:
        print(f"{r['size']:>8} {r['head']:<19} {r['cv_mean']:.4f} +- {r['cv_std']:.4f} "
              f"{r['split_80_20']:7.4f} {r['features_s']:8.1f}s {r['features_to_model_s']:10.1f}s")


if __name__ == "__main__":
    main()
