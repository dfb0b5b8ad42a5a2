"""Network input sizes: one grammar for ``input_size``, ``--input-size`` and ``--scales``.

``(h, w)`` resizes every image to that size; a float scales each image's own size; ``None``
(``native``) keeps it. :func:`target_size` turns an image's size into the size the network
sees.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

__all__ = [
    "MIN_SIDE",
    "format_size",
    "parse_input_size",
    "parse_scales",
    "target_size",
]


#: Smallest side fed to the network in native-size mode: two block5 cells at stride 16.
MIN_SIDE = 32


InputSize = tuple[int, int] | float | None


def parse_input_size(value: InputSize | str | Sequence[int]) -> InputSize:
    """Normalise an ``input_size`` parameter.

    Parameters
    ----------
    value : tuple of two ints, int, float, str or None
        ``(h, w)`` resizes every image to that size; an int ``s`` means ``(s, s)``; a float
        is a scale factor applied to each image's own size; ``None`` keeps each image's own
        size. Strings come from the command line: ``"128x64"`` (height x width), ``"224"``,
        ``"x2"`` or ``"2.0x"`` (a scale), ``"native"``.

    Returns
    -------
    tuple of (int, int), float or None

    Raises
    ------
    ValueError
        Not one of the forms above, or not positive.
    """
    if value is None:
        return None
    if isinstance(value, str):
        s = value.strip().lower()
        if s in ("", "none", "native"):
            return None
        if s.startswith("x") or s.endswith("x"):
            return parse_input_size(float(s.strip("x")))
        if "x" in s:
            h, w = s.split("x", 1)
            return parse_input_size((int(h), int(w)))
        return parse_input_size(int(s)) if s.isdigit() else parse_input_size(float(s))
    if isinstance(value, bool):
        raise ValueError(f"input_size must be (h, w), a scale or None, got {value!r}")
    if isinstance(value, int | np.integer):
        return parse_input_size((int(value), int(value)))
    if isinstance(value, float | np.floating):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"input_size scale must be a positive number, got {value!r}")
        return float(value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_size must be (height, width), a scale factor or None, got {value!r}"
        ) from None
    if h < MIN_SIDE // 2 or w < MIN_SIDE // 2:
        raise ValueError(
            f"input_size {value!r} is smaller than one stride-16 feature cell; use at least "
            f"{MIN_SIDE}x{MIN_SIDE}"
        )
    return (h, w)


def format_size(input_size: InputSize) -> str:
    """Spell an ``input_size`` the way the command line takes it (``"128x64"``, ``"x2"``)."""
    if input_size is None:
        return "native"
    if isinstance(input_size, float):
        return f"x{input_size:g}"
    return f"{input_size[0]}x{input_size[1]}"


def target_size(image_hw: tuple[int, int], input_size: InputSize) -> tuple[int, int]:
    """The (height, width) fed to the network for an image of size ``image_hw``.

    Parameters
    ----------
    image_hw : tuple of int
        The image's own (height, width).
    input_size : tuple of int, float or None
        As returned by :func:`parse_input_size`.

    Returns
    -------
    (height, width) : tuple of int
        Fixed sizes are returned as given. Native and scaled sizes are upscaled, keeping the
        aspect ratio, until the shorter side is at least :data:`MIN_SIDE`.
    """
    if isinstance(input_size, tuple):
        return input_size
    h, w = image_hw
    scale = 1.0 if input_size is None else float(input_size)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    short = min(th, tw)
    if short < MIN_SIDE:
        up = MIN_SIDE / short
        th, tw = max(MIN_SIDE, round(th * up)), max(MIN_SIDE, round(tw * up))
    return th, tw


def parse_scales(text: str | float | Sequence[float]) -> tuple[float, ...]:
    """Parse ``"1,2"`` (or a number, or a sequence) into positive scale factors.

    Returns
    -------
    tuple of float
        In the given order, duplicates removed.

    Raises
    ------
    ValueError
        Empty, non-numeric, or a non-positive scale.
    """
    if isinstance(text, str):
        parts = [p.strip().lstrip("x").rstrip("x") for p in text.split(",") if p.strip()]
    elif isinstance(text, numbers.Real):
        parts = [text]
    else:
        parts = list(text)
    if not parts:
        raise ValueError("no scale given; use e.g. 1 or 1,2")
    out: list[float] = []
    for p in parts:
        try:
            s = float(p)
        except (TypeError, ValueError):
            raise ValueError(f"scale {p!r} is not a number") from None
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"scales must be positive numbers, got {p!r}")
        if s not in out:
            out.append(s)
    return tuple(out)
