"""Row 5: class activation maps for a folder — against features, against Grad-CAM, and after
swapping the classifier.

- ``GapClassifier.cam`` (feature maps -> CAM -> upsampled to each image -> normalised) over a
  folder against ``GapFeaturizer.extract`` over the same folder, both into empty caches,
  back-to-back pairs: a CAM should cost no more than the forward pass it needs (<= 1.1x).
- CAMs per second against tf-keras-vis ``Gradcam`` on the same Keras VGG16 cut at
  ``block5_conv3`` with the same linear head on top (GAP + Dense), on the same images
  (Grad-CAM gets them already decoded and resized; gapsvm reads the files): >= 2x. For a
  linear head on GAP, Grad-CAM's channel weights are the head's weights divided by the map
  area, so both draw the same map; Grad-CAM pays for a gradient tape and eager execution.
- The same folder after swapping the classifier (another head on the same features): the
  maps come from the cache, so zero network passes, and the time per image beside a fresh
  forward pass's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import common

NAME = "cam"


def gradcam_available() -> bool:
    """Whether tf-keras-vis is installed (``pip install 'gapsvm[bench]'``)."""
    import importlib.util

    return importlib.util.find_spec("tf_keras_vis") is not None


def gradcam_rate(backbone: Any, coef: np.ndarray, intercept: float,
                 batches: list[np.ndarray], repeats: int) -> dict[str, Any]:
    """Grad-CAMs per second of tf-keras-vis on the backbone plus a GAP + Dense head.

    Parameters
    ----------
    backbone : gapsvm.backbone.Backbone
    coef : ndarray of shape (channels,)
        The head's weights for the explained class.
    intercept : float
    batches : list of uint8 ndarray of shape (b, h, w, 3)
    repeats : int

    Returns
    -------
    dict
        ``seconds`` (best run), ``rate``, ``cams`` (last batch's maps), ``version``.
    """
    import time

    import keras
    import tf_keras_vis
    from tf_keras_vis.gradcam import Gradcam

    gap = keras.layers.GlobalAveragePooling2D()(backbone.model.output)
    dense = keras.layers.Dense(1, name="head")
    model = keras.Model(backbone.model.input, dense(gap))
    dense.set_weights([np.asarray(coef, np.float32)[:, None],
                       np.asarray([intercept], np.float32)])
    gc = Gradcam(model, clone=False)
    preprocess = backbone.spec.preprocess()

    def score(output):
        return output[:, 0]

    def once(bs: list[np.ndarray]) -> tuple[float, Any]:
        t0 = time.perf_counter()
        cams = None
        for b in bs:
            x = preprocess(b.astype(np.float32))
            cams = gc(score, x, penultimate_layer=backbone.spec.layer)
        return time.perf_counter() - t0, cams

    once(batches[:1])  # build the gradient pieces outside the timing
    times, cams = [], None
    for _ in range(repeats):
        t, cams = once(batches)
        times.append(t)
    n = sum(len(b) for b in batches)
    return {"seconds": float(np.median(times)), "rate": common.rate(n, float(np.median(times))),
            "cams": cams, "version": tf_keras_vis.__version__}


def _trained_head(cache_dir: Path, n_train: int, kw: dict[str, Any]) -> tuple[Any, list, Any]:
    """A LinearSVC person/not-person GapClassifier on ``n_train`` INRIA crops at 128x64."""
    from gapsvm import GapClassifier
    from gapsvm.core.scan import load_directory
    from gapsvm.workflows.training import resolve_classifier

    tp, tl, _ = load_directory(common.shared_data_dir() / "persons" / "train")
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(tl == c), n_train // 2, replace=False)
                          for c in np.unique(tl)])
    train_paths, train_y = [tp[i] for i in idx], tl[idx]
    clf = GapClassifier(resolve_classifier("linearsvc"), input_size=(128, 64),
                        cache_dir=cache_dir, **kw)
    return clf.fit(train_paths, train_y), train_paths, train_y


def _gradcam_row(clf: Any, bb: Any, batches: list[np.ndarray], cam_rate: float,
                 n_images: int, input_size: Any, batch_size: int, repeats: int,
                 out: dict[str, Any]) -> dict[str, Any]:
    """Row 5a: gapsvm's CAMs per second against tf-keras-vis Grad-CAM's (when installed)."""
    from gapsvm.core.sizes import format_size

    name = "5a. gapsvm CAMs/s / tf-keras-vis Gradcam CAMs/s"
    if not gradcam_available():
        return common.row(
            name, None, at_least=2.0, fmt=".2f", unit="x",
            detail="skipped: tf-keras-vis is not installed (pip install 'gapsvm[bench]'; "
            "make bench installs it)",
        )
    W, b = clf.head_.cam_weights()
    t = list(clf.classes_).index("person")
    gcr = gradcam_rate(bb, W[t], float(b[t]), batches, repeats)
    out.update(gradcam_rate=gcr["rate"], gradcam_version=gcr["version"])
    return common.row(
        name, cam_rate / gcr["rate"], at_least=2.0, fmt=".2f", unit="x",
        detail=f"{cam_rate:.2f} vs {gcr['rate']:.2f} CAMs/s, same VGG16 + head, "
        f"{n_images} images at {format_size(input_size)}, batch {batch_size}; "
        f"tf-keras-vis {gcr['version']} (given decoded images)",
    )


def _swap_row(clf: Any, bb: Any, train_paths: list, train_y: Any, paths: list[str],
              work: Path, input_size: Any, cam_dir: Path, per_fresh: float,
              out: dict[str, Any]) -> dict[str, Any]:
    """Row 5b: swap the head (same features from the training cache, another classifier),
    then CAMs of the same folder from its cached maps: no network pass."""
    from sklearn.base import clone

    from gapsvm.workflows.training import resolve_classifier

    n_images = len(paths)
    swapped = clone(clf).set_params(classifier=resolve_classifier("logreg"),
                                    input_size=(128, 64), cache_dir=work / "train")
    before = bb.images_run
    swapped.fit(train_paths, train_y)
    swapped.set_params(input_size=input_size, cache_dir=cam_dir)
    t_swap, _ = common.time_call(lambda: swapped.cam(paths, target="person"))
    passes = bb.images_run - before
    out.update(t_swap=t_swap, swap_passes=passes)
    return common.row(
        "5b. CAMs after swapping the classifier: network passes", passes, equals=0,
        fmt=".0f",
        detail=f"{1e3 * t_swap / n_images:.1f} ms/image from the cached maps vs "
        f"{1e3 * per_fresh:.1f} ms/image with a forward pass "
        f"({per_fresh * n_images / max(t_swap, 1e-9):.0f}x faster); LinearSVC -> "
        "LogisticRegression",
    )


def run(
    *,
    n_images: int = 48,
    input_size: Any = (224, 224),
    precision: str = "float32",
    weights: Any = "imagenet",
    batch_size: int = 16,
    repeats: int = 2,
    n_train: int = 160,
    kind: str = "photos",
    gradcam: bool = True,
    gradcam_repeats: int = 1,
    workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Time CAMs against features, Grad-CAM, and a head swap on the same folder.

    Parameters
    ----------
    n_images : int, default=48
        Distinct variants of the real photos to explain.
    input_size : (h, w), default=(224, 224)
    precision : {"float32", "bfloat16"}, default="float32"
    weights : {"imagenet"} or None
    batch_size : int, default=16
    repeats : int, default=2
    n_train : int, default=160
        INRIA crops the person/not-person head is trained on (at 128x64).
    kind : str, default="photos"
    gradcam : bool, default=True
        Compare with tf-keras-vis when it is installed (a row says so when it is not).
    gradcam_repeats : int, default=1
        Timed Grad-CAM passes over the images (the slow side: one is enough).
    workdir : path, optional

    Returns
    -------
    dict
    """
    from gapsvm import GapFeaturizer
    from gapsvm.core.sizes import format_size
    from gapsvm.network.backbone.build import get_backbone

    bb = get_backbone("vgg16", weights, precision)
    kw = {"weights": weights, "precision": precision, "batch_size": batch_size, "verbose": 0}
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"name": NAME}
    with contextlib.ExitStack() as stack:
        work = Path(workdir) if workdir else stack.enter_context(common.temp_dir())
        clf, train_paths, train_y = _trained_head(work / "train", n_train, kw)
        paths = common.make_variants(common.real_images(kind), n_images, work / "images",
                                     seed=5)
        batches = common.batches_of(common.decode_all(paths, input_size), batch_size)
        bb(batches[0])
        counter = iter(range(10**6))

        def features() -> float:
            fz = GapFeaturizer(input_size=input_size, cache_dir=work / f"f{next(counter)}",
                               **kw).fit()
            return common.time_call(lambda: fz.extract(paths))[0]

        last: dict[str, Any] = {}

        def cams() -> float:
            last["dir"] = work / f"c{next(counter)}"
            clf.set_params(input_size=input_size, cache_dir=last["dir"])
            before = bb.images_run
            t, last["cams"] = common.time_call(lambda: clf.cam(paths, target="person"))
            last["passes"] = bb.images_run - before
            return t

        ratio, t_cam, t_feat = common.paired_ratio(cams, features, repeats)
        k = common.median_pair(t_cam, t_feat)
        cam_rate = common.rate(n_images, float(np.median(t_cam)))
        rows.append(common.row(
            "5. CAMs for a folder / features for the same folder", ratio, at_most=1.1,
            fmt=".3f",
            detail=f"{t_cam[k]:.2f} s vs {t_feat[k]:.2f} s for {n_images} "
            f"{kind} variants at {format_size(input_size)}, {precision} (cam: upsampled to "
            f"each image and normalised); {last['passes']} network passes; median of "
            f"{repeats} pairs",
        ))
        out.update(t_cam=t_cam, t_feat=t_feat, cam_rate=cam_rate)

        if gradcam:
            rows.append(_gradcam_row(clf, bb, batches, cam_rate, n_images, input_size,
                                     batch_size, gradcam_repeats, out))
        rows.append(_swap_row(clf, bb, train_paths, train_y, paths, work, input_size,
                              last["dir"], float(np.median(t_cam)) / n_images, out))
    out["rows"] = rows
    return out


def main() -> dict[str, Any]:
    """Run with the defaults and print the rows."""
    out = run()
    return common.print_rows(out)


if __name__ == "__main__":
    main()
