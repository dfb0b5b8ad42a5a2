"""What every benchmark shares: the machine, the real images and their variants, timing,
memory and the result rows the runner prints.

A benchmark's ``run(...)`` returns a dict with at least ``"rows"``: a list of :func:`row`
dicts, each one figure with its target and verdict. Every figure is a ratio of two timings
taken in the same process, on the same images, one right after the other, because on a shared
2-core machine absolute speeds move by 2x from one minute to the next while ratios do not.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Image kinds under the shared data folder (see its README): 40 panoramas 640x320, 24
#: varied photos, 800 INRIA 64x128 crops.
KINDS = ("boxes", "smoke", "persons", "photos", "all")


def shared_data_dir() -> Path:
    """The real data: ``$GAPSVM_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("GAPSVM_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()


def real_images(kind: str = "photos") -> list[Path]:
    """Real image files of one kind, sorted.

    Parameters
    ----------
    kind : {"boxes", "smoke", "persons", "photos", "all"}
        ``"photos"`` is boxes and smoke (whole photographs of several sizes); ``"all"`` adds
        the person crops.

    Returns
    -------
    list of Path

    Raises
    ------
    FileNotFoundError
        The shared data folder is missing (benchmarks never fall back to synthetic images).
    """
    from gapsvm.core.scan import list_images

    root = shared_data_dir()
    folders = {
        "boxes": ["boxes/images"],
        "smoke": ["smoke"],
        "persons": ["persons/train"],
        "photos": ["boxes/images", "smoke"],
        "all": ["boxes/images", "smoke", "persons/train"],
    }
    if kind not in folders:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    out: list[Path] = []
    for sub in folders[kind]:
        d = root / sub
        if not d.is_dir():
            raise FileNotFoundError(
                f"benchmark data not found at {d}: the benchmarks need ../shared/data beside "
                "the checkout (or GAPSVM_SHARED_DATA pointing at it)"
            )
        out.extend(Path(p) for p in list_images(d))
    return sorted(out)


def make_variants(
    sources: Sequence[str | os.PathLike],
    n: int,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    max_crop: float = 0.1,
    keep_size: bool = False,
) -> list[str]:
    """Write ``n`` distinct images made from ``sources`` by small random crops.

    Every variant has different pixels (so a different content hash: no accidental cache
    hit), keeps its source's format (JPEG quality 90 or PNG) and nearly its size.

    Parameters
    ----------
    sources : sequence of path
        Real images, used in turn.
    n : int
        How many variants.
    out_dir : path
        Created if needed; files are named ``00000_<stem><ext>``.
    seed : int, default=0
    max_crop : float, default=0.1
        Largest fraction of the height/width cut from each side.
    keep_size : bool, default=False
        Resize each crop back to its source's size, so that images of one source share a
        size (as the photos of one camera do) and native-size batches can fill.

    Returns
    -------
    list of str
        The written files, in order.
    """
    import cv2

    from gapsvm.core.decode import read_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    decoded: dict[int, np.ndarray] = {}
    seen: set[tuple] = set()
    paths: list[str] = []
    for i in range(n):
        j = i % len(sources)
        src = Path(sources[j])
        if j not in decoded:
            decoded[j] = read_image(src)
            if len(decoded) > 64:  # keep memory bounded when n is large
                decoded.pop(next(iter(decoded)))
        img = decoded[j]
        h, w = img.shape[:2]
        mh, mw = max(1, int(h * max_crop)), max(1, int(w * max_crop))
        for _ in range(1000):
            t, b = rng.integers(0, mh + 1, 2)
            left, r = rng.integers(0, mw + 1, 2)
            crop = (j, int(t), int(b), int(left), int(r))
            if crop not in seen and (t + b + left + r) > 0:
                break
        else:  # pragma: no cover - only with more variants than crops of a tiny image
            raise ValueError(f"cannot make {n} distinct variants of {len(sources)} images")
        seen.add(crop)
        part = np.ascontiguousarray(img[t : h - b, left : w - r])
        if keep_size:
            part = cv2.resize(part, (w, h), interpolation=cv2.INTER_LINEAR)
        ext = ".png" if src.suffix.lower() == ".png" else ".jpg"
        path = out / f"{i:05d}_{src.stem}{ext}"
        params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else []
        if not cv2.imwrite(str(path), cv2.cvtColor(part, cv2.COLOR_RGB2BGR), params):
            raise OSError(f"cannot write {path}")
        paths.append(str(path))
    return paths


def decode_all(paths: Sequence[str | os.PathLike], input_size: Any) -> list[np.ndarray]:
    """Decode and resize images exactly as gapsvm's pipeline does (uint8 RGB)."""
    from gapsvm.core.decode import decode_image, read_bytes, resize_image
    from gapsvm.core.sizes import target_size

    out = []
    for p in paths:
        img = decode_image(read_bytes(p), str(p))
        out.append(resize_image(img, target_size(img.shape[:2], input_size)))
    return out


def batches_of(images: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Stack equal-size images into consecutive batches of ``batch_size`` (the last may be
    shorter)."""
    return [
        np.stack(images[i : i + batch_size]) for i in range(0, len(images), batch_size)
    ]


def paired_ratio(
    numerator: Callable[[], float], denominator: Callable[[], float], repeats: int
) -> tuple[float, list[float], list[float]]:
    """Median over ``repeats`` of ``numerator() / denominator()``, each pair run back to back.

    On a shared machine the load changes by the minute; a pair taken seconds apart sees the
    same load, so the median of pair ratios is steadier than a ratio of two medians.

    Returns
    -------
    ratio : float
    nums, dens : list of float
        The raw times.
    """
    nums, dens = [], []
    for _ in range(repeats):
        nums.append(numerator())
        dens.append(denominator())
    return float(np.median(np.asarray(nums) / np.asarray(dens))), nums, dens


def median_pair(nums: Sequence[float], dens: Sequence[float]) -> int:
    """Index of the pair whose ratio is the median (the lower one for an even count), so a
    table can show the two timings behind the ratio it prints."""
    ratios = np.asarray(nums, dtype=float) / np.asarray(dens, dtype=float)
    return int(np.argsort(ratios)[(len(ratios) - 1) // 2])


def time_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call, and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def time_bare(backbone: Any, batches: Sequence[np.ndarray]) -> float:
    """Wall time of the compiled forward pass alone over already-decoded batches."""
    t0 = time.perf_counter()
    for b in batches:
        backbone(b)
    return time.perf_counter() - t0


@contextlib.contextmanager
def temp_dir(prefix: str = "gapsvm-bench-", parent: str | None = None) -> Iterator[Path]:
    """A temporary folder removed afterwards (outside the repository)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def silenced() -> Iterator[io.StringIO]:
    """Capture standard output (the CLI's summary lines) during a timed call."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    On Linux this is ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` would also count the
    parent's memory at the moment it forked this process (Linux carries it over ``exec``),
    so a child of a big benchmark runner would report the runner's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def cpu_flags() -> set[str]:
    """The CPU feature flags from ``/proc/cpuinfo`` (empty where there is none): the
    library's reader, :func:`gapsvm.utils.cpu.cpu_flags`, so the hint and the targets agree."""
    from gapsvm.utils.cpu import cpu_flags as read_flags

    return read_flags()


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo``, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_signature() -> str:
    """``family F model M stepping S`` from ``/proc/cpuinfo`` (virtual machines often show a
    generic model name; these numbers still tell the generation), or ``""``."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("cpu family", "model", "stepping") and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break
    except OSError:
        return ""
    if not fields:
        return ""
    return (f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')} "
            f"stepping {fields.get('stepping', '?')}")


def bf16_target(flags: set[str] | None = None) -> tuple[float | None, str]:
    """The bfloat16 speed-up to expect: 5x with AMX, 1.8x with AVX512-BF16 only.

    Returns
    -------
    target : float or None
        None when the CPU has no bfloat16 instructions (then there is no target).
    label : str
        Which hardware the target is for.
    """
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return 5.0, "AMX (amx_bf16): target >= 5x"
    if "avx512_bf16" in flags:
        return 1.8, "AVX512-BF16 without AMX: target >= 1.8x"
    return None, "no bfloat16 instructions (neither amx_bf16 nor avx512_bf16): no target"


def machine_info() -> dict[str, Any]:
    """CPU model, cores, bfloat16 hardware, library versions, date and current load."""
    import joblib
    import keras
    import sklearn
    import tensorflow as tf

    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cpu_signature": cpu_signature(),
        "cores": os.cpu_count(),
        "amx_bf16": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def row(
    name: str,
    value: float | None,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    equals: float | None = None,
    fmt: str = ".3f",
    unit: str = "",
    detail: str = "",
) -> dict[str, Any]:
    """One figure of the table with its target and verdict.

    Parameters
    ----------
    name : str
    value : float or None
        None when it could not be measured (then the verdict is None too).
    at_least, at_most, equals : float, optional
        The target; none of them makes an information-only row.
    fmt : str
        Format spec for the value and target.
    unit : str
        Appended to the printed value (``"x"``, ``" MB"``...).
    detail : str
        The two measurements behind the ratio, and anything a reader needs to judge it.

    Returns
    -------
    dict
        ``name``, ``value``, ``target`` (text), ``passed`` (bool or None), ``text``, ``detail``.
    """
    target, passed = "", None
    if at_least is not None:
        target = f">= {at_least:{fmt}}{unit}"
        passed = None if value is None else bool(value >= at_least)
    elif at_most is not None:
        target = f"<= {at_most:{fmt}}{unit}"
        passed = None if value is None else bool(value <= at_most)
    elif equals is not None:
        target = f"== {equals:{fmt}}{unit}"
        passed = None if value is None else bool(np.isclose(value, equals, rtol=0, atol=1e-9))
    text = "n/a" if value is None else f"{value:{fmt}}{unit}"
    return {
        "name": name, "value": value, "target": target, "passed": passed, "text": text,
        "detail": detail,
    }


def rate(n: int, seconds: float) -> float:
    """Images per second (NaN for a zero time)."""
    return n / seconds if seconds > 0 else float("nan")


def print_rows(out: dict[str, Any]) -> dict[str, Any]:
    """Print a bench's rows, one line each (what every ``main()`` shows), and return ``out``."""
    for r in out["rows"]:
        print(f"{r['name']}: {r['text']} {r['target']} {r['detail']}")
    return out
