"""Row 6: peak memory does not grow with the number of images.

Each size runs in a fresh process (``python -m benchmarks.bench_memory --child ...``) so
that every peak is its own: ``gapsvm features`` over a folder of N distinct variants of the
real images into an empty cache (mode ``features``), and ``GapClassifier.explain`` over the
same folder (mode ``explain``: maps are reduced to CAMs as they arrive). The network input is
small (64x64 by default) so that 10,000 images fit the time; memory that grows per image
(maps, decoded images, cache entries) would show the same way at any input size, while the
fixed part (TensorFlow, the model, its activations) is what a bigger input size changes.

Rows 6b and 6c (:func:`run_cam`) are that fixed part at its largest: ``gapsvm cam`` at native
size over a folder of 640x320 images with 4000x3000 photos and 1x20000 strips among them,
against the same folder without the large ones. The bound on network input pixels
(:data:`gapsvm.core.sizes.MAX_INPUT_PIXELS`) is what keeps the ratio small: photos are
fitted to it, strips refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import common

NAME = "memory"
#: Absolute ceiling for the peak resident memory of any run.
LIMIT_MB = 3.5 * 1024


def _cam_child(args: argparse.Namespace) -> dict[str, Any]:
    """``train``: a model on the folder's images (small inputs); ``cam``: `gapsvm cam` at
    native size over the folder with that model."""
    from gapsvm import cli
    from gapsvm.core.scan import list_images

    t0 = time.perf_counter()
    paths = list_images(args.folder)
    if args.child == "train":
        from gapsvm import GapClassifier

        weights = None if args.weights == "none" else args.weights
        clf = GapClassifier(weights=weights, input_size=(64, 64), precision=args.precision,
                            cache_dir=None)
        # Memory does not depend on what the head learned: any two-class head will do.
        clf.fit(paths, [("a", "b")[i % 2] for i in range(len(paths))]).save(args.out)
    else:
        argv = ["cam", args.model, args.folder, "--input-size", "native", "--out", args.out,
                "--cache-dir", args.cache_dir, "--precision", args.precision, "-q"]
        with common.silenced():
            status = cli.main(argv)
        if status != 0:  # the strips are skipped with a reason: still status 0
            raise SystemExit(f"gapsvm cam exited with {status}")
    return {"peak_rss_mb": common.peak_rss_mb(), "seconds": time.perf_counter() - t0,
            "images": len(paths), "mode": args.child}


def _child(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child in ("train", "cam"):
        return _cam_child(args)
    from gapsvm.core.scan import list_images
    from gapsvm.core.sizes import format_size, parse_input_size
    from gapsvm.network.backbone.build import get_backbone

    weights = None if args.weights == "none" else args.weights
    size = parse_input_size(args.input_size)
    bb = get_backbone("vgg16", weights, args.precision)
    paths = list_images(args.folder)
    t0 = time.perf_counter()
    if args.child == "features":
        from gapsvm import cli

        argv = ["features", args.folder, "--out", args.out, "--cache-dir", args.cache_dir,
                "--input-size", format_size(size), "--precision", args.precision, "-q",
                "--batch-size", str(args.batch_size), "--weights", args.weights]
        with common.silenced():
            status = cli.main(argv)
        if status != 0:
            raise SystemExit(f"gapsvm features exited with {status}")
    else:
        import numpy as np

        from gapsvm import GapClassifier

        clf = GapClassifier(weights=weights, input_size=size, precision=args.precision,
                            batch_size=args.batch_size, cache_dir=args.cache_dir)
        # Memory does not depend on what the head learned: any two-class head will do.
        k = min(len(paths), 40)
        clf.fit(paths[:k], np.arange(k) % 2)
        info = clf.explain(paths)
        assert len(info.cams) == len(paths)
    return {"peak_rss_mb": common.peak_rss_mb(), "seconds": time.perf_counter() - t0,
            "images": len(paths), "images_run": bb.images_run, "mode": args.child}


def measure(folder: Path, cache_dir: Path, mode: str, input_size: Any, precision: str,
            weights: Any, batch_size: int, *, out: Path | None = None,
            model: Path | None = None) -> dict[str, Any]:
    """Run one size (or one ``train`` / ``cam`` step) in a fresh process and return its peak
    resident memory."""
    from gapsvm.core.sizes import format_size

    out = out or cache_dir.parent / f"{folder.name}-{mode}.joblib"
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--child", mode,
           "--folder", str(folder), "--cache-dir", str(cache_dir), "--out", str(out),
           "--input-size", format_size(input_size), "--precision", precision,
           "--weights", "none" if weights is None else str(weights),
           "--batch-size", str(batch_size), *(["--model", str(model)] if model else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(common.ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=common.ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(
    *,
    sizes: tuple[int, ...] = (1000, 5000),
    modes: tuple[str, ...] = ("features", "explain"),
    input_size: Any = (64, 64),
    precision: str = "bfloat16",
    weights: Any = "imagenet",
    batch_size: int = 16,
    kind: str = "all",
    workdir: str | os.PathLike | None = None,
    cam: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Peak resident memory for each number of images, each in a fresh process.

    Parameters
    ----------
    sizes : tuple of int, default=(1000, 5000)
        Numbers of images (``--full`` adds 10000); the growth is from the first to the last.
    modes : tuple of str, default=("features", "explain")
    input_size : (h, w), default=(64, 64)
        Small, so that the largest size fits the time (see the module docstring).
    precision : {"float32", "bfloat16"}, default="bfloat16"
    weights : {"imagenet"} or None
    batch_size : int, default=16
    kind : str, default="all"
        Real images the variants are made from (all three kinds, mixed).
    workdir : path, optional
    cam : dict, optional
        Also the rows of :func:`run_cam`, called with these keyword arguments.

    Returns
    -------
    dict
    """
    from gapsvm.core.sizes import format_size

    sizes = tuple(sorted(sizes))
    results: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in modes}
    with contextlib.ExitStack() as stack:
        work = Path(workdir) if workdir else stack.enter_context(common.temp_dir())
        files = common.make_variants(common.real_images(kind), sizes[-1], work / "all", seed=6)
        for n in sizes:
            folder = work / f"n{n}"
            folder.mkdir()
            for f in files[:n]:
                dst = folder / Path(f).name
                try:
                    os.link(f, dst)
                except OSError:
                    dst.write_bytes(Path(f).read_bytes())
            for mode in modes:
                results[mode][n] = measure(folder, work / f"cache-{mode}-{n}", mode, input_size,
                                           precision, weights, batch_size)
    rows = []
    lo, hi = sizes[0], sizes[-1]
    for mode in modes:
        r = results[mode]
        growth = 100.0 * (r[hi]["peak_rss_mb"] - r[lo]["peak_rss_mb"]) / r[lo]["peak_rss_mb"]
        peaks = ", ".join(f"{n}: {r[n]['peak_rss_mb']:.0f} MB ({r[n]['seconds']:.0f} s)"
                          for n in sizes)
        what = "`gapsvm features`" if mode == "features" else "GapClassifier.explain"
        rows.append(common.row(
            f"6. peak RSS growth {lo} -> {hi} images, {what}", growth, at_most=10.0,
            fmt=".1f", unit="%",
            detail=f"{peaks}; fresh process each, input {format_size(input_size)}, "
            f"{precision}",
        ))
        top = max(v["peak_rss_mb"] for v in r.values())
        rows.append(common.row(
            f"6a. peak RSS, largest run, {what}", top, at_most=LIMIT_MB, fmt=".0f", unit=" MB",
            detail=f"{hi} images",
        ))
    out: dict[str, Any] = {"name": NAME, "rows": rows, "results": results}
    if cam is not None:
        extra = run_cam(**{"workdir": workdir and Path(workdir) / "cam-row", **cam})
        out["rows"] += extra["rows"]
        out["cam"] = extra["results"]
    return out


def _write(path: Path, rgb: Any) -> str:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"cannot write {path}")
    return str(path)


def cam_folders(work: Path, *, n_small: int, n_large: int, small_hw: tuple[int, int],
                large_hw: tuple[int, int], strip_w: int, kind: str) -> tuple[Path, Path]:
    """Two folders made from real photos: ``small`` (``n_small`` images of ``small_hw``) and
    ``mixed`` (the same, plus ``n_large`` photos of ``large_hw`` and ``n_large`` 1-pixel-high
    strips ``strip_w`` wide). Sizes are (height, width).

    Returns
    -------
    (mixed, small) : tuple of Path
    """
    import cv2

    from gapsvm.core.decode import read_image

    mixed, small = work / "mixed", work / "small"
    for d in (mixed, small):
        d.mkdir(parents=True, exist_ok=True)
    sources = common.real_images(kind)
    for i in range(n_small + n_large):
        img = read_image(sources[i % len(sources)])
        if i < n_small:
            part = cv2.resize(img, small_hw[::-1], interpolation=cv2.INTER_AREA)
            name = f"s{i:03d}.jpg"
            _write(mixed / name, part)
            os.link(mixed / name, small / name)
        else:
            big = cv2.resize(img, large_hw[::-1], interpolation=cv2.INTER_CUBIC)
            _write(mixed / f"l{i:03d}.jpg", big)
            row = np.ascontiguousarray(big[big.shape[0] // 2 : big.shape[0] // 2 + 1])
            _write(mixed / f"strip{i:03d}.png", cv2.resize(row, (strip_w, 1)))
    return mixed, small


def run_cam(
    *,
    n_small: int = 8,
    n_large: int = 2,
    small_hw: tuple[int, int] = (320, 640),
    large_hw: tuple[int, int] = (3000, 4000),
    strip_w: int = 20000,
    precision: str = "float32",
    weights: Any = "imagenet",
    kind: str = "photos",
    workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Rows 6b, 6c: peak RSS of ``gapsvm cam`` at native size, with and without large images.

    Parameters
    ----------
    n_small, n_large : int, default=8, 2
        640x320 images in both folders; 4000x3000 photos (and as many 1x20000 strips) in the
        mixed one only.
    small_hw, large_hw : (h, w), default=(320, 640), (3000, 4000)
    strip_w : int, default=20000
    precision : {"float32", "bfloat16"}, default="float32"
        float32: the default precision, and the larger activations.
    weights : {"imagenet"} or None
    kind : str, default="photos"
        Real images the folders are made from.
    workdir : path, optional

    Returns
    -------
    dict
        ``rows`` and ``results`` (``train``, ``mixed``, ``small``: each child's peak).
    """
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        work = Path(workdir) if workdir else stack.enter_context(common.temp_dir())
        mixed, small = cam_folders(work / "cam", n_small=n_small, n_large=n_large,
                                   small_hw=small_hw, large_hw=large_hw, strip_w=strip_w,
                                   kind=kind)
        model = work / "cam-model.skops"
        results["train"] = measure(small, work / "cam-cache-train", "train", (64, 64),
                                   precision, weights, 16, out=model)
        for name, folder in (("small", small), ("mixed", mixed)):
            results[name] = measure(folder, work / f"cam-cache-{name}", "cam", None, precision,
                                    weights, 16, out=work / f"cams-{name}", model=model)
    lo, hi = results["small"]["peak_rss_mb"], results["mixed"]["peak_rss_mb"]
    what = (f"{n_small} x {small_hw[1]}x{small_hw[0]}"
            f" + {n_large} x {large_hw[1]}x{large_hw[0]} + {n_large} x {strip_w}x1")
    rows = [
        common.row("6b. peak RSS ratio, `gapsvm cam` native, with large images / without",
                   hi / lo, at_most=1.5, fmt=".2f", unit="x",
                   detail=f"{what}: {hi:.0f} MB; {n_small} x {small_hw[1]}x{small_hw[0]} "
                   f"alone: {lo:.0f} MB; fresh process each, {precision}"),
        common.row("6c. peak RSS, `gapsvm cam` native, with large images", hi,
                   at_most=LIMIT_MB, fmt=".0f", unit=" MB",
                   detail=f"{results['mixed']['seconds']:.0f} s"),
    ]
    return {"name": NAME, "rows": rows, "results": results}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: ``--child MODE ...`` measures one run (used by :func:`run`); without it,
    run the default sizes and print the rows."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", choices=["features", "explain", "train", "cam"])
    p.add_argument("--model")
    p.add_argument("--folder")
    p.add_argument("--cache-dir")
    p.add_argument("--out")
    p.add_argument("--input-size", default="64x64")
    p.add_argument("--precision", default="bfloat16")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    if args.child:
        out = _child(args)
        print(json.dumps(out))
        return out
    return common.print_rows(run(cam={}))


if __name__ == "__main__":
    main()
