"""Network input sizes: one grammar for ``input_size``, ``--input-size``, ``--scale(s)``.

The spellings, as the command line takes them and :func:`format_size` writes them:

- ``HxW`` (``128x64``, height x width) or ``S`` (``224``, a square): every image is resized
  to that size;
- ``xS`` or ``Sx`` (``x2``, ``1.5x``): each image's own size times ``S``;
- ``native``: each image's own size (scale 1; ``None`` in Python);
- a scale list, ``1,2`` or ``x1,x1.5`` (:func:`parse_scales`): several scales, for
  multi-scale CAMs. Inside a list, and after ``--scale``, a bare number is a scale.

:func:`target_size` turns an image's size and an input size into what the network sees.
The minimum side is a fact of the backbone (its registry entry's ``min_side``); the default
:data:`MIN_SIDE` is VGG16's.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "MIN_SIDE",
    "format_scales",
    "format_size",
    "parse_input_size",
    "parse_scales",
    "target_size",
]


#: VGG16's smallest input side in native-size mode: two block5 cells at stride 16. Functions
#: here take ``min_side`` for other backbones.
MIN_SIDE = 32


InputSize = tuple[int, int] | float | None


_NATIVE = ("", "none", "native")


def _scale(token: object) -> float:
    """One scale factor: a positive finite number, or its text with an optional ``x``."""
    text = token.strip().lower().strip("x") if isinstance(token, str) else token
    try:
        s = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"scale {token!r} is not a number (e.g. 2, x2 or 1.5x)") from None
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"scales must be positive numbers, got {token!r}")
    return s


def _parse_text(s: str, min_side: int) -> InputSize:
    if s in _NATIVE:
        return None
    if s.startswith("x") or s.endswith("x"):
        return _scale(s)
    h, sep, w = s.partition("x")
    try:
        if sep:
            value: tuple[int, int] | int | float = (int(h), int(w))
        else:  # "224" is a square size, "1.5" a scale
            value = int(s) if s.isdigit() else float(s)
    except ValueError:
        raise ValueError(
            f"input size {s!r}: expected HxW (e.g. 128x64), a scale like x2, or native"
        ) from None
    return parse_input_size(value, min_side=min_side)


def parse_input_size(
    value: InputSize | str | Sequence[int], *, min_side: int = MIN_SIDE
) -> InputSize:
    """Normalise an ``input_size`` parameter.

    Parameters
    ----------
    value : tuple of two ints, int, float, str or None
        ``(h, w)`` resizes every image to that size; an int ``s`` means ``(s, s)``; a float
        is a scale factor applied to each image's own size; ``None`` keeps each image's own
        size. Strings come from the command line: ``"128x64"`` (height x width), ``"224"``,
        ``"x2"`` or ``"2.0x"`` (a scale), ``"native"``.
    min_side : int, default=MIN_SIDE
        The backbone's smallest input side; a fixed size under half of it (less than one
        feature cell) is refused.

    Returns
    -------
    tuple of (int, int), float or None

    Raises
    ------
    ValueError
        Not one of the forms above, not positive, or too small.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return _parse_text(value.strip().lower(), min_side)
    if isinstance(value, bool):
        raise ValueError(f"input_size must be (h, w), a scale or None, got {value!r}")
    if isinstance(value, int | np.integer):
        return parse_input_size((int(value), int(value)), min_side=min_side)
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
    if h < min_side // 2 or w < min_side // 2:
        raise ValueError(
            f"input_size {value!r} is smaller than one feature cell; use at least "
            f"{min_side}x{min_side}"
        )
    return (h, w)


def parse_scales(text: str | float | Iterable[float | str]) -> tuple[float, ...]:
    """Parse a scale list: ``"1,2"``, ``"x1,x1.5"``, ``"native"``, a number or a sequence.

    Each item is a scale (``2``, ``x2``, ``2x``) or ``native`` (scale 1): the grammar of
    :func:`parse_input_size`'s scales, where a bare number is a scale, not a size.

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
        parts: list[object] = [p for p in text.split(",") if p.strip()]
    elif isinstance(text, numbers.Real):
        parts = [text]
    else:
        parts = list(text)
    if not parts:
        raise ValueError("no scale given; use e.g. 1 or 1,2")
    out: list[float] = []
    for p in parts:
        native = isinstance(p, str) and p.strip().lower() in _NATIVE
        s = 1.0 if native else _scale(p)
        if s not in out:
            out.append(s)
    return tuple(out)


def format_size(input_size: InputSize) -> str:
    """Spell an ``input_size`` the way the command line takes it (``"128x64"``, ``"x2"``)."""
    if input_size is None:
        return "native"
    if isinstance(input_size, float):
        return f"x{input_size:g}"
    return f"{input_size[0]}x{input_size[1]}"


def format_scales(scales: Iterable[float], sep: str = ",") -> str:
    """Spell a scale list the way :func:`parse_scales` reads it (``"x1,x2"``)."""
    return sep.join(format_size(float(s)) for s in scales)


def target_size(
    image_hw: tuple[int, int], input_size: InputSize, *, min_side: int = MIN_SIDE
) -> tuple[int, int]:
    """The (height, width) fed to the network for an image of size ``image_hw``.

    Parameters
    ----------
    image_hw : tuple of int
        The image's own (height, width).
    input_size : tuple of int, float or None
        As returned by :func:`parse_input_size`.
    min_side : int, default=MIN_SIDE
        The backbone's smallest input side.

    Returns
    -------
    (height, width) : tuple of int
        Fixed sizes are returned as given. Native and scaled sizes are upscaled, keeping the
        aspect ratio, until the shorter side is at least ``min_side``.
    """
    if isinstance(input_size, tuple):
        return input_size
    h, w = image_hw
    scale = 1.0 if input_size is None else float(input_size)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    short = min(th, tw)
    if short < min_side:
        up = min_side / short
        th, tw = max(min_side, round(th * up)), max(min_side, round(tw * up))
    return th, tw
