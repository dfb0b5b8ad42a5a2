"""Row 2: bfloat16 against float32 — speed, accuracy and the class activation maps.

- Speed: the bare compiled forward pass of both precisions over the same decoded batches
  (224x224, batch 8, as in the issue), back-to-back pairs. The target depends on the CPU:
  AMX (``amx_bf16``) runs bfloat16 matrix tiles and should give >= 5x; AVX512-BF16 alone
  only has bfloat16 dot products, >= 1.8x.
- Accuracy: 5-fold cross-validated accuracy of the ``gapsvm train`` default head
  (LinearSVC) on the 800 INRIA crops, features of each precision, the same folds.
- CAMs: per-image Pearson correlation between the float32 and bfloat16 CAMs of the same
  head (the float32 one: a fitted model switched to bfloat16; only the features differ),
  whose minimum has the >= 0.99 target; and of each precision's own head (a model trained
  in bfloat16 from the start), reported beside it: a second head adds its own training
  variance, which shows most on crops whose CAM is nearly flat.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import common

NAME = "precision"


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps (1.0 when both are constant and equal, else 0.0 for a
    constant one)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


def _speed(n: int, size: Any, batch: int, repeats: int, weights: Any) -> dict[str, Any]:
    from gapsvm.network.backbone.build import get_backbone

    paths = common.real_images("photos")[:n]
    batches = common.batches_of(common.decode_all(paths, size), batch)
    batches = [b for b in batches if len(b) == batch] or batches
    f32 = get_backbone("vgg16", weights, "float32")
    b16 = get_backbone("vgg16", weights, "bfloat16")
    for bb in (f32, b16):
        bb(batches[0])
    ratio, t32, t16 = common.paired_ratio(
        lambda: common.time_bare(f32, batches), lambda: common.time_bare(b16, batches), repeats)
    m = sum(len(b) for b in batches)
    policies = {
        p: sorted({layer.dtype_policy.name for layer in bb.model.layers})
        for p, bb in (("float32", f32), ("bfloat16", b16))
    }
    return {"ratio": ratio, "t32": t32, "t16": t16, "images": m,
            "rate32": common.rate(m, float(np.median(t32))),
            "rate16": common.rate(m, float(np.median(t16))), "policies": policies}


def _cv_accuracy(X: np.ndarray, y: np.ndarray, folds: int) -> float:
    from sklearn.model_selection import StratifiedKFold

    from gapsvm.core.head import GapHead
    from gapsvm.workflows.training import resolve_classifier

    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    correct = 0
    for tr, te in skf.split(X, y):
        head = GapHead(resolve_classifier("linearsvc")).fit(X[tr], y[tr])
        correct += int(np.sum(head.predict(X[te]) == y[te]))
    return 100.0 * correct / len(y)


def _features(paths: list, precision: str, size: Any, weights: Any, batch: int):
    from gapsvm import GapFeaturizer

    fz = GapFeaturizer(weights=weights, input_size=size, precision=precision, batch_size=batch,
                       cache_dir=None, verbose=0).fit()
    return fz.extract(paths, maps=True)


def _crops(n_accuracy: int | None) -> tuple[list[str], np.ndarray]:
    """The INRIA crops (all, or a balanced seeded subset of ``n_accuracy``) and labels."""
    from gapsvm.core.scan import load_directory

    paths, labels, _ = load_directory(common.shared_data_dir() / "persons" / "train")
    if n_accuracy is not None and n_accuracy < len(paths):
        rng = np.random.default_rng(0)
        idx = np.concatenate([
            rng.choice(np.flatnonzero(labels == c), n_accuracy // 2, replace=False)
            for c in np.unique(labels)
        ])
        paths, labels = [paths[i] for i in idx], labels[idx]
    return paths, labels


def _cam_agreement(res: dict[str, Any], big: dict[str, Any], labels: np.ndarray
                   ) -> dict[str, Any]:
    """Per-image Pearson r of the person CAMs from bfloat16 and float32 maps: with the float32
    head on both (``same``) and each precision with its own head (``own``); and the maps'
    relative L2 error on the panoramas (``rel``)."""
    from gapsvm.core.head import GapHead
    from gapsvm.workflows.training import resolve_classifier

    heads = {p: GapHead(resolve_classifier("linearsvc")).fit(r.gap, labels) for p, r in
             res.items()}
    # Row 1 of the expanded binary weights is the second class ("person", sorted labels).
    W = {p: h.cam_weights()[0][1] for p, h in heads.items()}
    same, own, own_cams = [], [], []
    for group in (res, big):
        for m32, m16 in zip(group["float32"].maps, group["bfloat16"].maps, strict=True):
            c32 = np.tensordot(np.asarray(m32, np.float64), W["float32"], axes=([2], [0]))
            same.append(pearson(c32, np.tensordot(np.asarray(m16, np.float64), W["float32"],
                                                  axes=([2], [0]))))
            own.append(pearson(c32, np.tensordot(np.asarray(m16, np.float64), W["bfloat16"],
                                                 axes=([2], [0]))))
            own_cams.append(c32)
    rel = [
        float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64))
              / max(np.linalg.norm(np.asarray(a, np.float64)), 1e-12))
        for a, b in zip(big["float32"].maps, big["bfloat16"].maps, strict=True)
    ]
    return {"same": np.asarray(same), "own": np.asarray(own), "own_cams": own_cams,
            "rel": rel}


def _cam_rows(cam: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """Rows 2b and 2c from :func:`_cam_agreement`."""
    same_a, own_a, own_cams, rel = cam["same"], cam["own"], cam["own_cams"], cam["rel"]
    own_std = [float(np.std(c)) for c in own_cams]
    worst = int(np.argmin(own_a))
    return [
        common.row(
            "2b. min per-image Pearson r of CAMs, bfloat16 vs float32 maps (same head)",
            float(same_a.min()), at_least=0.99, fmt=".4f",
            detail=f"mean {same_a.mean():.4f}, {where}; the float32 head on both precisions' "
            f"maps, as when a model is switched to bfloat16; map relative L2 error "
            f"{np.mean(rel):.4f} (panoramas, mean)",
        ),
        common.row(
            "2c. min per-image Pearson r of CAMs, each precision with its own head",
            float(own_a.min()), fmt=".4f",
            detail=f"mean {own_a.mean():.4f}, 1st percentile {np.percentile(own_a, 1):.4f}, "
            f"{int(np.sum(own_a < 0.99))} of {len(own_a)} below 0.99 (worst: image {worst}, "
            f"CAM std {float(np.std(own_cams[worst])):.3g} vs median "
            f"{np.median(own_std):.3g}); a head trained on bfloat16 features is another "
            "head: this adds training variance to the precision's effect",
        ),
    ]


def run(
    *,
    n_speed: int = 32,
    speed_size: Any = (224, 224),
    speed_batch: int = 8,
    repeats: int = 3,
    n_accuracy: int | None = None,
    accuracy_size: Any = (128, 64),
    folds: int = 5,
    cam_size: Any = None,
    n_cam_photos: int | None = None,
    weights: Any = "imagenet",
    batch_size: int = 16,
) -> dict[str, Any]:
    """Compare bfloat16 with float32.

    Parameters
    ----------
    n_speed : int, default=32
        Real photos for the speed pairs.
    speed_size : (h, w), default=(224, 224)
    speed_batch : int, default=8
    repeats : int, default=3
    n_accuracy : int, optional
        Person crops for the accuracy check (default all 800; a balanced subset otherwise).
    accuracy_size : (h, w), default=(128, 64)
        The crops' own size.
    folds : int, default=5
    cam_size : default=None
        Input size for the CAMs of the whole panoramas (None: native, 640x320).
    n_cam_photos : int, optional
        Panoramas for the CAM check (default all 40).
    weights : {"imagenet"} or None
    batch_size : int, default=16

    Returns
    -------
    dict
    """
    from gapsvm.core.sizes import format_size

    target, hw_label = common.bf16_target()
    sp = _speed(n_speed, speed_size, speed_batch, repeats, weights)
    rows = [common.row(
        "2. bfloat16 / float32 throughput (bare model)", sp["ratio"], at_least=target,
        fmt=".2f", unit="x",
        detail=f"{sp['rate16']:.1f} vs {sp['rate32']:.1f} img/s at {format_size(speed_size)} "
        f"batch {speed_batch}, {sp['images']} photos, median of {repeats} pairs; {hw_label}; "
        f"layer policies {sp['policies']['bfloat16']}",
    )]

    paths, labels = _crops(n_accuracy)
    boxes = [str(p) for p in common.real_images("boxes")][:n_cam_photos]
    res = {p: _features(paths, p, accuracy_size, weights, batch_size)
           for p in ("float32", "bfloat16")}
    big = {p: _features(boxes, p, cam_size, weights, batch_size) for p in ("float32", "bfloat16")}
    acc = {p: _cv_accuracy(r.gap, labels, folds) for p, r in res.items()}
    diff = abs(acc["bfloat16"] - acc["float32"])
    rows.append(common.row(
        f"2a. |accuracy bfloat16 - float32|, {folds}-fold, percentage points", diff,
        at_most=0.5, fmt=".2f",
        detail=f"float32 {acc['float32']:.2f}%, bfloat16 {acc['bfloat16']:.2f}% on "
        f"{len(labels)} INRIA crops at {format_size(accuracy_size)} (LinearSVC)",
    ))

    cam = _cam_agreement(res, big, labels)
    where = (f"{len(cam['same'])} images ({len(labels)} crops at {format_size(accuracy_size)} "
             f"+ {len(boxes)} panoramas at {format_size(cam_size)})")
    rows.extend(_cam_rows(cam, where))
    same_a, own_a, rel = cam["same"], cam["own"], cam["rel"]
    return {"name": NAME, "rows": rows, "speed": sp, "accuracy": acc,
            "cam_corr_same_min": float(same_a.min()), "cam_corr_own_min": float(own_a.min()),
            "cam_corr_own_mean": float(own_a.mean()),
            "cam_corr_same_mean": float(same_a.mean()), "map_rel_l2": float(np.mean(rel))}


def main() -> dict[str, Any]:
    """Run with the defaults and print the rows."""
    out = run()
    return common.print_rows(out)


if __name__ == "__main__":
    main()
