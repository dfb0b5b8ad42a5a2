"""Row 1: ``gapsvm features`` end to end against the bare compiled model.

The bare figure is the backbone's ``tf.function`` alone over batches decoded beforehand; the
end-to-end figure is the whole ``gapsvm features`` command (run in this process, the backbone
already built) over the same files with an empty cache: scanning, reading, hashing, decoding,
resizing, the network, cache writes and the features file. Their ratio says how much of the
network's speed the input pipeline keeps.

With ``strategies=True`` it also compares ways of feeding the network: the reader thread with
several read-ahead depths (the public ``prefetch=`` of :func:`gapsvm.network.extraction.extract`;
0 is no overlap) and a ``tf.data`` pipeline. With ``native=True`` it checks native-size mode:
how many times the compiled function was traced, how full the batches were, and whether a
fixed-shape signature would be faster than the fully-None one.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import common

NAME = "pipeline"


#: The input-pipeline strategies compared with ``strategies=True``: a name and the
#: ``prefetch`` depth of gapsvm's reader thread (None: the tf.data pipeline, prefetch 2).
STRATEGIES = (
    ("no overlap (prefetch 0: reading inline)", 0),
    ("1 reader thread, prefetch 1", 1),
    ("1 reader thread, prefetch 2 (the default)", 2),
    ("1 reader thread, prefetch 4", 4),
    ("tf.data from_generator, prefetch 2", None),
)


def tfdata_extract(
    paths: list[str], backbone: Any, input_size: Any, cache: Any, batch_size: int,
    prefetch: int = 2,
) -> int:
    """Features through a ``tf.data`` pipeline: a generator running gapsvm's own reader
    (identical decoding), batched and prefetched by tf.data, then the network and the cache.

    Only for a fixed ``input_size`` (tf.data batches need equal shapes). Returns the number
    of images computed.
    """
    import tensorflow as tf

    from gapsvm.network.prepare import PendingImage, prepare_images

    side: dict[int, PendingImage] = {}
    names = [str(p) for p in paths]

    def gen():
        for j in range(0, len(paths), batch_size):
            for item in prepare_images(
                paths, names, range(j, min(j + batch_size, len(paths))), cache=cache,
                need_maps=False, input_size=input_size, min_side=backbone.spec.min_side,
            ):
                if isinstance(item, PendingImage):
                    side[item.index] = item
                    yield item.index, item.pixels

    ds = tf.data.Dataset.from_generator(
        gen,
        output_signature=(
            tf.TensorSpec((), tf.int64),
            tf.TensorSpec((input_size[0], input_size[1], 3), tf.uint8),
        ),
    ).batch(batch_size).prefetch(prefetch)
    n = 0
    for idx, imgs in ds:
        maps, gaps = backbone.forward(imgs)
        maps, gaps = maps.numpy(), gaps.numpy()
        for i, m, g in zip(idx.numpy(), maps, gaps, strict=True):
            item = side.pop(int(i))
            cache.put(item.key, g, m, item.image_hw, item.input_hw)
            n += 1
    return n


def _cli_features(folder: Path, out: Path, cache_dir: Path, input_size: Any, precision: str,
                  weights: Any, batch_size: int) -> float:
    from gapsvm import cli
    from gapsvm.core.sizes import format_size

    argv = [
        "features", str(folder), "--out", str(out), "--cache-dir", str(cache_dir),
        "--input-size", format_size(input_size), "--precision", precision,
        "--batch-size", str(batch_size), "-q",
        "--weights", "none" if weights is None else str(weights),
    ]
    with common.silenced():
        t, status = common.time_call(lambda: cli.main(argv))
    if status != 0:
        raise RuntimeError(f"gapsvm {' '.join(argv)} exited with {status}")
    return t


def _native(backbone: Any, paths: list[str], batch_size: int) -> dict[str, Any]:
    """Run native-size extraction and count traces and batches."""
    from gapsvm.network.extraction import iter_features

    calls: list[int] = []

    class Counting:
        def __init__(self, bb: Any) -> None:
            self.bb, self.spec = bb, bb.spec

        def __call__(self, images: np.ndarray):
            calls.append(len(images))
            return self.bb(images)

    before = backbone.forward.experimental_get_tracing_count()
    sizes = set()
    t0 = time.perf_counter()
    for r in iter_features(paths, Counting(backbone), input_size=None, batch_size=batch_size):
        sizes.add(r.input_hw)
    seconds = time.perf_counter() - t0
    after = backbone.forward.experimental_get_tracing_count()
    return {
        "images": len(paths), "distinct_sizes": len(sizes), "batches": len(calls),
        "mean_batch": float(np.mean(calls)) if calls else 0.0, "seconds": seconds,
        "traces_before": before, "traces_after": after,
    }


def _fixed_vs_none(backbone: Any, batches: list[np.ndarray], repeats: int) -> dict[str, Any]:
    """Time the fully-None signature against a function traced for the exact batch shape."""
    import tensorflow as tf

    model, preprocess = backbone.model, backbone.spec.preprocess()
    shape = batches[0].shape

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.uint8)])
    def fixed(images):
        x = preprocess(tf.cast(images, tf.float32))
        maps = tf.cast(model(x, training=False), tf.float32)
        return maps, tf.reduce_mean(maps, axis=[1, 2])

    full = [b for b in batches if b.shape == shape]
    fixed(full[0])
    backbone(full[0])

    def timed(fn) -> float:
        t0 = time.perf_counter()
        for b in full:
            fn(b)[1].numpy()
        return time.perf_counter() - t0

    ratio, t_fixed, t_none = common.paired_ratio(
        lambda: timed(fixed), lambda: timed(backbone.forward), repeats)
    return {"fixed_over_none": ratio, "fixed": t_fixed, "none": t_none,
            "images": len(full) * shape[0]}


def _strategy(
    bb: Any, paths: list[str], batches: list[np.ndarray], work: Path, input_size: Any,
    batch_size: int, prefetch: int | None, repeats: int,
) -> tuple[float, float]:
    """One input-pipeline strategy against the bare model: (median ratio, its rate)."""
    from gapsvm.network.extraction import extract
    from gapsvm.network.prepare import open_cache

    counter = iter(range(10**6))

    def one() -> float:
        cache = open_cache(work / f"cache-p{prefetch}-{next(counter)}", bb)
        if prefetch is None:
            return common.time_call(lambda: tfdata_extract(
                paths, bb, input_size, cache, batch_size))[0]
        return common.time_call(lambda: extract(
            paths, backbone=bb, input_size=input_size, cache=cache, batch_size=batch_size,
            want_maps=False, prefetch=prefetch))[0]

    r, _, ts = common.paired_ratio(lambda: common.time_bare(bb, batches), one, repeats)
    return r, common.rate(len(paths), float(np.median(ts)))


def _native_rows(
    bb: Any, npaths: list[str], batches: list[np.ndarray], batch_size: int, repeats: int
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Rows 1b and 1c: retracing in native-size mode, and the None-shape signature's cost."""
    nat = _native(bb, npaths, batch_size)
    fx = _fixed_vs_none(bb, batches, repeats)
    rows = [
        common.row(
            "1b. native size: new traces of the compiled function",
            nat["traces_after"] - nat["traces_before"], equals=0, fmt=".0f",
            detail=f"{nat['images']} images of {nat['distinct_sizes']} sizes in "
            f"{nat['batches']} batches (mean {nat['mean_batch']:.1f}); traced "
            f"{nat['traces_after']} time(s) in this process",
        ),
        common.row(
            "1c. None-shape signature / fixed-shape function (speed)",
            fx["fixed_over_none"], fmt=".3f",
            detail=f"time ratio, {fx['images']} images, median of {repeats} pairs: near "
            "1 the None signature costs nothing, so no bucket shapes are needed",
        ),
    ]
    return nat, fx, rows


def _e2e_row(bb: Any, folder: Path, work: Path, batches: list[np.ndarray], input_size: Any,
             res: dict[str, Any], kind: str, weights: Any, repeats: int,
             gate: bool) -> dict[str, Any]:
    """Row 1: the whole ``gapsvm features`` command against the bare model, paired."""
    n_images, precision, batch_size = res["n_images"], res["precision"], res["batch_size"]
    counter = iter(range(10**6))

    def e2e() -> float:
        r = next(counter)
        return _cli_features(folder, work / f"f{r}.joblib", work / f"cache-e2e{r}",
                             input_size, precision, weights, batch_size)

    ratio, t_bare, t_e2e = common.paired_ratio(
        lambda: common.time_bare(bb, batches), e2e, repeats)
    k = common.median_pair(t_bare, t_e2e)
    res.update(t_bare=t_bare, t_e2e=t_e2e, bare_rate=common.rate(n_images, t_bare[k]),
               e2e_rate=common.rate(n_images, t_e2e[k]))
    return common.row(
        f"1. `gapsvm features` end to end / bare tf.function ({precision})", ratio,
        at_least=0.95 if gate else None, fmt=".3f",
        detail=f"{res['e2e_rate']:.1f} vs {res['bare_rate']:.1f} img/s, {n_images} "
        f"{kind} variants at {res['input_size']}, batch {batch_size}; the median of "
        f"{repeats} back-to-back pairs (its rates shown)",
    )


def run(
    *,
    n_images: int = 96,
    input_size: Any = (224, 224),
    precision: str = "bfloat16",
    weights: Any = "imagenet",
    batch_size: int = 16,
    repeats: int = 3,
    kind: str = "photos",
    strategies: bool = False,
    native: bool = True,
    n_native: int | None = None,
    gate: bool = True,
    workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Measure ``gapsvm features`` end to end against the bare model on the same images.

    Parameters
    ----------
    n_images : int, default=96
        Distinct variants of the real images (a multiple of ``batch_size`` keeps every bare
        batch full).
    input_size : (h, w), default=(224, 224)
    precision : {"float32", "bfloat16"}, default="bfloat16"
        The faster the network, the more the pipeline shows: bfloat16 is the hard case.
    weights : {"imagenet"} or None, default="imagenet"
    batch_size : int, default=16
        Both sides use it (the CLI's default).
    repeats : int, default=3
        Back-to-back (bare, end-to-end) pairs; the median of their ratios counts.
    kind : str, default="photos"
        Which real images (:func:`benchmarks.common.real_images`).
    strategies : bool, default=False
        Also compare input-pipeline strategies (see the module docstring).
    native : bool, default=True
        Also check native-size mode and the None-shape signature.
    n_native : int, optional
        Images for the native-size check (default: ``n_images``); they keep their
        source's size, as a camera's photos do.
    gate : bool, default=True
        Give the row its >= 0.95 target (False: information only).
    workdir : path, optional
        Where to put the variants and caches (default: a temporary folder).

    Returns
    -------
    dict
        ``rows`` plus the raw timings.
    """
    from gapsvm.core.sizes import format_size
    from gapsvm.network.backbone.build import get_backbone

    bb = get_backbone("vgg16", weights, precision)
    res: dict[str, Any] = {"name": NAME, "precision": precision, "n_images": n_images,
                           "input_size": format_size(input_size), "batch_size": batch_size}
    with contextlib.ExitStack() as stack:
        work = Path(workdir) if workdir else stack.enter_context(common.temp_dir())
        folder = work / "images"
        paths = common.make_variants(common.real_images(kind), n_images, folder)
        batches = common.batches_of(common.decode_all(paths, input_size), batch_size)
        bb(batches[0])  # trace and create the kernels before any timing
        res["rows"] = [_e2e_row(bb, folder, work, batches, input_size, res, kind, weights,
                                repeats, gate)]
        if strategies:
            res["strategies"] = {}
            for name, prefetch in STRATEGIES:
                r, rate = _strategy(bb, paths, batches, work, input_size, batch_size, prefetch,
                                    repeats)
                res["strategies"][name] = r
                res["rows"].append(common.row(
                    f"1s. pipeline strategy: {name}", r, fmt=".3f",
                    detail=f"{rate:.1f} img/s (library extract, no CLI) / bare",
                ))
        if native:
            npaths = common.make_variants(common.real_images(kind), n_native or n_images,
                                          work / "native", seed=1, keep_size=True)
            res["native"], res["fixed_vs_none"], rows = _native_rows(bb, npaths, batches,
                                                                     batch_size, repeats)
            res["rows"].extend(rows)
    return res


def main() -> dict[str, Any]:
    """Run with the defaults and print the rows."""
    out = run(strategies=True)
    return common.print_rows(out)


if __name__ == "__main__":
    main()
