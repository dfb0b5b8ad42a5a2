"""Issue 13's two tables, reproduced: classification accuracy and weakly-supervised object
localisation (WSOL) on the two multi-class sets with boxes, ``caltech101_3`` and
``tinyimagenet_10`` (``../shared/data``).

* Accuracy of LinearSVC and LogisticRegression on GAP features at 224x224, 5-fold (plain
  stratified folds, and folds that keep each near-duplicate group of the manifest together).
* Localisation on one fixed split per set: each class's images are split (seed 0, whole
  near-duplicate groups) into a training half, a calibration quarter and a scored quarter. A
  LinearSVC is trained on the first; every method's box threshold (a fraction of its map's
  maximum, as :func:`gapsvm.core.boxes.cam_to_boxes` cuts) is chosen on the second for
  GT-known localisation; GT-known, top-1 and MaxBoxAccV2 are measured on the third only.
  The centre-Gaussian baseline gets its own calibrated threshold (``gapsvm evaluate``'s
  ``gaussian`` column reuses the CAM's). Variants of issue 13 item 4 are extra rows, each
  with its own calibrated threshold: the contrastive map (the class's CAM minus the mean of
  the other classes', from ``cam(target="all")``); the union of all components' boxes
  instead of the largest component's; bicubic instead of bilinear upsampling; the
  softmax-weighted map (``sum_c softmax(scores)_c CAM_c``); the network input at each
  image's own aspect ratio, its short side at the fitted input's (the head trained on the
  squashed input applies: GAP features do not depend on the size); and multi-scale fusion
  (the mean of the upsampled CAMs at the fitted input and at twice it).

Run: ``python -m benchmarks.wsol [--quick]``; features come through the cache
(``cache_dir="auto"``, i.e. ``$GAPSVM_HOME/features``).
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.common import shared_data_dir

DATASETS = ("caltech101_3", "tinyimagenet_10")
INPUT_SIZE = (224, 224)
#: Box thresholds tried in calibration, fractions of the map's maximum (the library's grid).
THRESHOLDS = np.round(np.arange(0.0, 1.0, 0.01), 2)
IOU_MATCH = 0.5
#: Localisation rows, in table order.
METHODS = ("CAM", "CAM, union of components", "contrastive CAM",
           "contrastive CAM, union of components", "CAM, bicubic upsampling",
           "softmax-weighted CAM", "CAM, native aspect", "CAM, multi-scale x1+x2",
           "CAM, multi-scale x1+x2, union of components", "centred box",
           "whole image", "centre-Gaussian (own threshold)", "centre-Gaussian (CAM threshold)")
QUICK_PER_CLASS = 10


@dataclass(frozen=True)
class Dataset:
    """One labelled set: image paths, labels, near-duplicate groups, true boxes, sizes."""

    name: str
    paths: list[str]
    labels: np.ndarray
    groups: np.ndarray
    boxes: list[list[Any]]
    image_hw: list[tuple[int, int]]


def load_dataset(name: str, per_class: int | None = None, seed: int = 0) -> Dataset:
    """Read ``name``'s ``boxes.csv`` and ``manifest.csv`` (a seeded ``per_class`` slice).

    Raises
    ------
    FileNotFoundError
        The set is not in the shared data folder (benchmarks never use synthetic data).
    """
    from gapsvm.core.boxes_csv import read_boxes_csv

    root = shared_data_dir() / name
    for f in ("boxes.csv", "manifest.csv"):
        if not (root / f).is_file():
            raise FileNotFoundError(
                f"{root / f} not found: this benchmark needs ../shared/data/{name} beside the "
                "checkout (or GAPSVM_SHARED_DATA pointing at the data folder)"
            )
    with open(root / "manifest.csv", newline="") as fh:
        group = {r["filename"]: r["near_dup_group"] for r in csv.DictReader(fh)}
    anns = read_boxes_csv(root / "boxes.csv", root)
    if per_class is not None:
        rng = np.random.default_rng(seed)
        keep = []
        for label in sorted({a.label for a in anns}):
            idx = [i for i, a in enumerate(anns) if a.label == label]
            keep += sorted(rng.permutation(idx)[:per_class].tolist())
        anns = [anns[i] for i in sorted(keep)]
    return Dataset(name, [a.path for a in anns], np.array([a.label for a in anns]),
                   np.array([group[a.filename] for a in anns]), [a.boxes for a in anns],
                   [a.image_hw for a in anns])


def split(labels: np.ndarray, groups: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Per class: half for training, a quarter for calibration, a quarter scored; a
    near-duplicate group never straddles two parts."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "calibration": [], "scored": []}
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        order = list(dict.fromkeys(groups[idx][rng.permutation(idx.size)]))
        quota = {"train": idx.size / 2, "calibration": idx.size / 4}
        counts = dict.fromkeys(parts, 0)
        for g in order:
            members = idx[groups[idx] == g].tolist()
            part = next((p for p in ("train", "calibration") if counts[p] < quota[p]), "scored")
            parts[part] += members
            counts[part] += len(members)
    return {k: np.array(sorted(v), dtype=np.intp) for k, v in parts.items()}


def accuracy_rows(ds: Dataset, gap: np.ndarray, folds: int = 5) -> list[dict[str, Any]]:
    """5-fold accuracy of both heads, with plain and near-duplicate-grouped folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
    from sklearn.svm import LinearSVC

    heads = {"LinearSVC": LinearSVC(max_iter=10000),
             "LogisticRegression": LogisticRegression(max_iter=5000)}
    rows = []
    for name, head in heads.items():
        plain = cross_val_score(head, gap, ds.labels,
                                cv=StratifiedKFold(folds, shuffle=True, random_state=0))
        grouped = cross_val_score(head, gap, ds.labels, groups=ds.groups,
                                  cv=StratifiedGroupKFold(folds, shuffle=True, random_state=0))
        rows.append({"set": ds.name, "images": len(ds.paths),
                     "classes": len(np.unique(ds.labels)), "head": name,
                     "cv_mean": float(plain.mean()), "cv_std": float(plain.std()),
                     "grouped_mean": float(grouped.mean()), "grouped_std": float(grouped.std())})
    return rows


def sweep_ious(m: np.ndarray, gt: Sequence[Any], thresholds: np.ndarray, *, of_max: bool,
               union: bool = False) -> np.ndarray:
    """Best IoU with the true boxes of the map's box at each threshold.

    ``of_max``: thresholds are fractions of the map's maximum (a map with no positive value
    has no box: IoU 0); else thresholds of the min-max normalised map (MaxBoxAccV2's sweep).
    ``union``: the box around every pixel kept, instead of the largest component's box.
    """
    from gapsvm.core import metrics as M

    peak, lo = float(m.max()), float(m.min())
    t = np.asarray(thresholds, dtype=np.float64)
    if of_max:
        if peak <= 0.0:
            return np.zeros(t.size)
        t = np.zeros_like(t) if peak <= lo else np.clip((t * peak - lo) / (peak - lo), 0, 1)
    if not union:
        return M.iou_curve(m, gt, t)
    norm = M.minmax_normalize(m)
    rows, cols = norm.max(axis=1), norm.max(axis=0)
    boxes = []
    for thr in t:  # the mask's bounding box: first and last row and column reaching thr
        r, c = np.flatnonzero(rows >= thr), np.flatnonzero(cols >= thr)
        boxes.append((int(c[0]), int(r[0]), int(c[-1]) + 1, int(r[-1]) + 1))
    return M.box_ious(np.array(boxes), gt).max(axis=1)


def fixed_box_ious(ds: Dataset, idx: np.ndarray) -> dict[str, np.ndarray]:
    """IoU of the two map-free boxes (centred box, whole image) per image of ``idx``."""
    from gapsvm.core import metrics as M

    out: dict[str, list[float]] = {"centred box": [], "whole image": []}
    for i in idx:
        h, w = ds.image_hw[i]
        out["centred box"].append(M.best_iou(M.center_box((h, w)), ds.boxes[i]))
        out["whole image"].append(M.best_iou((0, 0, w, h), ds.boxes[i]))
    return {k: np.asarray(v) for k, v in out.items()}


#: Map variants: row name -> (map kind of :func:`variant_maps`, union of components).
MAP_SPECS: dict[str, tuple[str, bool]] = {
    "CAM": ("cam", False), "CAM, union of components": ("cam", True),
    "contrastive CAM": ("contrastive", False),
    "contrastive CAM, union of components": ("contrastive", True),
    "CAM, bicubic upsampling": ("bicubic", False), "softmax-weighted CAM": ("softmax", False),
    "CAM, native aspect": ("native", False), "CAM, multi-scale x1+x2": ("multiscale", False),
    "CAM, multi-scale x1+x2, union of components": ("multiscale", True),
    "centre-Gaussian": ("gaussian", False)}


def network_maps(clf: Any, ds: Dataset, part: np.ndarray, input_size: tuple[int, int]
                 ) -> dict[str, list[np.ndarray]]:
    """Feature-resolution maps of the images ``part``, raw (no normalisation).

    ``all``: every class's CAM at ``input_size`` (one array (n_classes, h, w) per image);
    ``x2``: the true class's CAM at twice ``input_size``; ``native``: the true class's CAM
    at the image's own aspect ratio, its short side at ``min(input_size)`` (the head applies
    at any size: GAP features do not depend on it).
    """
    paths = [ds.paths[i] for i in part]
    labels = [ds.labels[i] for i in part]
    feats = {"size": "features", "normalize": False}
    big = (2 * input_size[0], 2 * input_size[1])
    out = {"all": list(clf.cam(paths, target="all", **feats)),
           "x2": list(clf.cam(paths, target=labels, input_size=big, **feats)), "native": []}
    for i in part:  # one scale per image: each has its own short side
        scale = min(input_size) / min(ds.image_hw[i])
        out["native"].append(clf.cam([ds.paths[i]], target=[ds.labels[i]], input_size=scale,
                                     **feats)[0])
    return out


def variant_maps(all_maps: np.ndarray, t: int, probs: np.ndarray, x2: np.ndarray,
                 native: np.ndarray, hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Every map kind of :data:`MAP_SPECS` for one image of size ``hw``, at image resolution.

    ``all_maps``: every class's raw CAM at the fitted input (n_classes, h, w); ``t``: the
    true class's index; ``probs``: the softmax of the class scores; ``x2`` and ``native``:
    the true class's CAM at twice the input and at the image's own aspect ratio.
    """
    from gapsvm.core import metrics as M
    from gapsvm.core.cam import fuse_cams, upsample_cam

    all_maps = np.asarray(all_maps, dtype=np.float32)
    cam = all_maps[t]
    others = np.delete(all_maps, t, axis=0).mean(axis=0)
    # Upsampling is linear, so weighting before or after it gives the same map.
    mix = np.tensordot(probs, all_maps, axes=(0, 0)).astype(np.float32)
    return {"cam": upsample_cam(cam, hw), "bicubic": upsample_cam(cam, hw, "bicubic"),
            "contrastive": upsample_cam(cam - others, hw), "softmax": upsample_cam(mix, hw),
            "native": upsample_cam(native, hw), "multiscale": fuse_cams([cam, x2], hw),
            "gaussian": M.center_map(hw)}


def map_curves(clf: Any, ds: Dataset, idx: np.ndarray, scores: np.ndarray,
               input_size: tuple[int, int], chunk: int = 32) -> dict[str, Any]:
    """Per map method of :data:`MAP_SPECS`, the IoU curves of the images ``idx`` (whose class
    scores are ``scores``): ``"frac"`` over :data:`THRESHOLDS` (fractions of the maximum),
    ``"norm"`` over MaxBoxAccV2's grid."""
    from gapsvm.core import metrics as M

    out = {k: {"frac": [], "norm": []} for k in MAP_SPECS}
    classes = [str(c) for c in clf.classes_]
    probs = M.scores_to_probabilities(scores)
    for start in range(0, idx.size, chunk):
        part = idx[start : start + chunk]
        net = network_maps(clf, ds, part, input_size)
        for j, i in enumerate(part):
            maps = variant_maps(net["all"][j], classes.index(str(ds.labels[i])),
                                probs[start + j], net["x2"][j], net["native"][j],
                                ds.image_hw[i])
            for name, (kind, union) in MAP_SPECS.items():
                m, gt = maps[kind], ds.boxes[i]
                out[name]["frac"].append(sweep_ious(m, gt, THRESHOLDS, of_max=True, union=union))
                out[name]["norm"].append(
                    sweep_ious(m, gt, M.MAXBOXACC_THRESHOLDS, of_max=False, union=union))
    return {k: {kk: np.asarray(vv) for kk, vv in v.items()} for k, v in out.items()}


def _score(frac: np.ndarray, norm: np.ndarray | None, cal: np.ndarray, sco: np.ndarray,
           correct: np.ndarray, b: int | None = None) -> dict[str, Any]:
    """Calibrate the threshold index on ``cal`` rows (unless given) and score ``sco`` rows."""
    from gapsvm.core import metrics as M

    if b is None:
        b = int(np.argmax((frac[cal] >= IOU_MATCH).mean(axis=0)))  # first: the lowest
    ious = frac[sco, b]
    if norm is None:  # a fixed box: the same IoU at every threshold
        maxbox = float(np.mean([(ious >= d).mean() for d in M.MAXBOXACC_IOUS]))
    else:
        maxbox = M.max_box_accuracy(norm[sco], M.MAXBOXACC_THRESHOLDS).value
    return {"threshold": float(THRESHOLDS[b]), "b": b,
            "gt_known": float((ious >= IOU_MATCH).mean()),
            "top1": M.top1_localisation(correct[sco], ious), "maxboxacc_v2": float(maxbox)}


def fixed_size(input_size: Any) -> tuple[int, int]:
    """The fitted network input as (h, w): the variants scale it, so it must be fixed."""
    from gapsvm.core.sizes import parse_input_size

    size = parse_input_size(input_size)
    if not isinstance(size, tuple):
        raise ValueError(f"the localisation table needs a fixed input size, got {input_size!r}")
    return size


def localisation(ds: Dataset, gap: np.ndarray, metadata: dict[str, Any],
                 settings: dict[str, Any]) -> dict[str, Any]:
    """Train on the split's training half, calibrate, score: one row per :data:`METHODS`."""
    from sklearn.svm import LinearSVC

    from gapsvm import GapClassifier

    parts = split(ds.labels, ds.groups)
    clf = GapClassifier(LinearSVC(max_iter=10000), verbose=0, **settings)
    clf.fit_features(gap[parts["train"]], ds.labels[parts["train"]], metadata)
    rest = np.concatenate([parts["calibration"], parts["scored"]])
    scores = clf.class_scores(gap[rest])
    pred = clf.classes_[np.argmax(scores, axis=1)]
    correct = pred.astype(str) == ds.labels[rest].astype(str)
    cal = np.arange(parts["calibration"].size)
    sco = np.arange(cal.size, rest.size)
    curves = map_curves(clf, ds, rest, scores, fixed_size(settings["input_size"]))
    rows = {name: _score(c["frac"], c["norm"], cal, sco, correct)
            for name, c in curves.items() if name != "centre-Gaussian"}
    g = curves["centre-Gaussian"]
    rows["centre-Gaussian (own threshold)"] = _score(g["frac"], g["norm"], cal, sco, correct)
    rows["centre-Gaussian (CAM threshold)"] = _score(g["frac"], g["norm"], cal, sco, correct,
                                                     b=rows["CAM"]["b"])
    for name, ious in fixed_box_ious(ds, rest).items():
        row = _score(np.repeat(ious[:, None], THRESHOLDS.size, axis=1), None, cal, sco, correct)
        rows[name] = {**row, "threshold": None}
    return {"set": ds.name, "n_train": int(parts["train"].size), "n_calibration": int(cal.size),
            "n_scored": int(sco.size), "accuracy_scored": float(correct[sco].mean()),
            "rows": [{"method": m, **{k: v for k, v in rows[m].items() if k != "b"}}
                     for m in METHODS]}


def run(per_class: int | None = None, *, weights: Any = "imagenet",
        input_size: Any = INPUT_SIZE, cache_dir: Any = "auto", folds: int = 5,
        datasets: Sequence[str] = DATASETS) -> dict[str, Any]:
    """Both tables for each set (``per_class``: a seeded slice of that many images a class).

    Returns
    -------
    dict
        ``accuracy``: rows of :func:`accuracy_rows`; ``localisation``: one
        :func:`localisation` result per set; ``settings``.
    """
    from gapsvm import GapFeaturizer

    settings = {"weights": weights, "input_size": input_size, "cache_dir": cache_dir}
    fz = GapFeaturizer(verbose=0, **settings).fit()
    acc, loc = [], []
    for name in datasets:
        ds = load_dataset(name, per_class)
        gap = fz.extract(ds.paths).gap
        acc += accuracy_rows(ds, gap, folds)
        loc.append(localisation(ds, gap, fz.metadata(), settings))
    return {"accuracy": acc, "localisation": loc, "settings": settings}


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def markdown(out: dict[str, Any]) -> str:
    """The two tables as markdown."""
    lines = ["| set | images | classes | head | 5-fold | 5-fold, near-duplicates grouped |",
             "|---|---:|---:|---|---:|---:|"]
    for r in out["accuracy"]:
        lines.append(f"| {r['set']} | {r['images']} | {r['classes']} | {r['head']} | "
                     f"{r['cv_mean']:.3f} +- {r['cv_std']:.3f} | "
                     f"{r['grouped_mean']:.3f} +- {r['grouped_std']:.3f} |")
    for loc in out["localisation"]:
        lines += ["", f"**{loc['set']}**: trained on {loc['n_train']} images, thresholds "
                  f"calibrated on {loc['n_calibration']}, scored on {loc['n_scored']} "
                  f"(classification accuracy {loc['accuracy_scored']:.3f} on those)", "",
                  "| method | threshold | GT-known | top-1 loc. | MaxBoxAccV2 |",
                  "|---|---:|---:|---:|---:|"]
        for r in loc["rows"]:
            thr = "-" if r["threshold"] is None else f"{r['threshold']:.2f}"
            lines.append(f"| {r['method']} | {thr} | {_f(r['gt_known'])} | {_f(r['top1'])} | "
                         f"{_f(r['maxboxacc_v2'])} |")
    return "\n".join(lines)


def main() -> None:
    """Command-line entry."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help=f"a seeded slice of {QUICK_PER_CLASS} images per class")
    a = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from benchmarks.seed_accuracy import cpu_model

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; input {INPUT_SIZE[0]}x{INPUT_SIZE[1]}"
          f"{', quick slice' if a.quick else ''}\n", flush=True)
    outs = []
    for name in DATASETS:  # each set's tables as soon as they are measured: a run is long
        outs.append(run(QUICK_PER_CLASS if a.quick else None, datasets=[name]))
        print(markdown(outs[-1]) + "\n", flush=True)
    print("All sets:\n")
    print(markdown({k: [r for o in outs for r in o[k]] for k in ("accuracy", "localisation")}))


if __name__ == "__main__":
    main()
