"""Network input sizes: one grammar for ``input_size``, ``--input-size``, ``--scale(s)``.

The spellings, as the command line takes them and :func:`format_size` writes them
(:data:`GRAMMAR`):

- ``HxW`` (``128x64``, height x width): every image is resized to that size;
- ``S``, a bare whole number (``224``): the square ``SxS``, as in ``input_size=224``;
- ``xS`` or ``Sx`` (``x2``, ``1.5x``): each image's own size times ``S``. A scale always
  carries its ``x``: a bare ``1.5`` is refused rather than guessed, and a bare ``2`` is the
  2x2 square (refused as too small), never the scale ``x2``;
- ``native``: each image's own size (scale 1; ``None`` in Python);
- a scale list, ``1,2`` or ``x1,x1.5`` (:func:`parse_scales`): several scales, for
  multi-scale CAMs. Inside a list, and after ``--scale``, a bare number is a scale.

In Python the types say the same: a tuple ``(h, w)`` is a size, an ``int`` a square, a
``float`` a scale and ``None`` native.

:func:`target_size` turns an image's size and an input size into what the network sees.
The minimum side is a fact of the backbone (its registry entry's ``min_side``); the default
:data:`MIN_SIDE` is VGG16's. The number of input pixels is bounded by
:data:`MAX_INPUT_PIXELS`, because the backbone's activations, and so the memory a network pass
takes, grow with it: a fixed size over the bound is refused, a native or scaled image over it
is downscaled to fit (keeping its aspect ratio), and an image so elongated that its short side
would fall under ``min_side`` at the bound is refused with a named reason.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "GRAMMAR",
    "MAX_INPUT_PIXELS",
    "MIN_SIDE",
    "downscale_note",
    "format_scales",
    "format_size",
    "parse_input_size",
    "parse_scales",
    "target_size",
]


#: VGG16's smallest input side: two block5 cells at stride 16. Functions here take
#: ``min_side`` for other backbones.
MIN_SIDE = 32

#: The most pixels one image may bring to the network (height x width of its input): 1632x1224
#: for a 4:3 photo. The backbone's activations, and so a network pass's memory, grow in
#: proportion; this default keeps a whole ``gapsvm cam`` run on full-size photographs under
#: about 3 GB at float32 (``benchmarks/README.md`` has the measurements). Functions here take
#: ``max_pixels`` (``None``: no bound).
MAX_INPUT_PIXELS = 2_000_000

#: The input-size grammar, as error messages and ``--help`` quote it.
GRAMMAR = "HxW (e.g. 128x64), S for SxS (e.g. 224), a scale xS or Sx (e.g. x2, 1.5x), or native"


InputSize = tuple[int, int] | float | None


_NATIVE = ("none", "native")


def _scale(token: object) -> float:
    """One scale factor: a positive finite number, or its text with an optional ``x``."""
    if isinstance(token, bool | np.bool_):  # True is 1 to Python; no one means scale 1 by it
        raise ValueError(f"a scale must be a number, got {token!r}")
    text = token.strip().lower().strip("x") if isinstance(token, str) else token
    try:
        s = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"scale {token!r} is not a number (e.g. 2, x2 or 1.5x)") from None
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"scales must be positive numbers, got {token!r}")
    return s


def _not_in_grammar(s: str) -> ValueError:
    """The error for a spelling outside :data:`GRAMMAR`, with a hint when one is likely."""
    hint = ""
    parts = s.replace(" ", "").split(",")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        hint = f"; for a height and width write {parts[0]}x{parts[1]}"
    else:
        try:
            float(s)
            hint = f"; for a scale write x{s}"
        except ValueError:
            pass
    return ValueError(f"input size {s!r} is not one of: {GRAMMAR}{hint}")


def _parse_text(s: str, min_side: int, max_pixels: int | None) -> InputSize:
    if s in _NATIVE:
        return None
    if not s:
        raise ValueError(f"input size is empty; use one of: {GRAMMAR}")
    if s.startswith("x") or s.endswith("x"):
        try:
            return _scale(s)
        except ValueError as exc:
            raise ValueError(f"input size {s!r}: {exc}; use one of: {GRAMMAR}") from None
    h, sep, w = s.partition("x")
    h, w = h.strip(), w.strip()
    if sep and h.isdigit() and w.isdigit():
        return parse_input_size((int(h), int(w)), min_side=min_side, max_pixels=max_pixels)
    if not sep and s.isdigit():  # "224" is the square 224x224
        try:
            return parse_input_size(int(s), min_side=min_side, max_pixels=max_pixels)
        except ValueError as exc:
            raise ValueError(f"{exc} (a bare number is a square; for a scale write x{s})") from None
    raise _not_in_grammar(s)


def _side(v: object) -> int:
    """One side of a fixed size: 96.5 and True are refused, not truncated to a size."""
    if isinstance(v, bool | np.bool_):
        raise TypeError("a side must be a whole number")
    return operator.index(v)  # type: ignore[arg-type]


def _check_fixed(h: int, w: int, min_side: int, max_pixels: int | None) -> tuple[int, int]:
    if h < min_side or w < min_side:
        raise ValueError(
            f"input size {h}x{w} is smaller than the backbone's minimum side of {min_side} "
            f"pixels; use at least {min_side}x{min_side}"
        )
    if max_pixels is not None and h * w > max_pixels:
        raise ValueError(
            f"input size {h}x{w} is {h * w:,} pixels, over the {max_pixels:,}-pixel bound on "
            "the network input (the memory a network pass takes grows with it); use a "
            "smaller size, or native to keep each image's own size within the bound"
        )
    return h, w


def parse_input_size(
    value: InputSize | str | Sequence[int],
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int | None = MAX_INPUT_PIXELS,
) -> InputSize:
    """Normalise an ``input_size`` parameter.

    Parameters
    ----------
    value : tuple of two ints, int, float, str or None
        ``(h, w)`` resizes every image to that size; an int ``s`` means ``(s, s)``; a float
        is a scale factor applied to each image's own size; ``None`` keeps each image's own
        size. Strings follow :data:`GRAMMAR`: ``"128x64"`` (height x width), ``"224"``
        (square), ``"x2"`` or ``"2.0x"`` (a scale), ``"native"``.
    min_side : int, default=MIN_SIDE
        The backbone's smallest input side; a fixed size with a shorter side is refused.
    max_pixels : int or None, default=MAX_INPUT_PIXELS
        A fixed size with more pixels is refused (``None``: no bound). Scales are bounded
        per image by :func:`target_size`.

    Returns
    -------
    tuple of (int, int), float or None

    Raises
    ------
    ValueError
        Not one of the forms above (the message quotes :data:`GRAMMAR`), not positive, under
        ``min_side`` or over ``max_pixels``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return _parse_text(value.strip().lower(), min_side, max_pixels)
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"input_size must be (h, w), a scale or None, got {value!r}")
    if isinstance(value, int | np.integer):
        return _check_fixed(int(value), int(value), min_side, max_pixels)
    if isinstance(value, float | np.floating):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"input_size scale must be a positive number, got {value!r}")
        return float(value)
    try:
        h, w = (_side(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_size must be (height, width), a scale factor or None, got {value!r}"
        ) from None
    return _check_fixed(h, w, min_side, max_pixels)


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
        Empty, non-numeric (booleans included), or a non-positive scale.
    """
    if isinstance(text, str):
        parts: list[object] = [p for p in text.split(",") if p.strip()]
    elif isinstance(text, numbers.Real | np.bool_):
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
    """Spell an ``input_size`` the way the command line takes it (``"128x64"``, ``"x2"``).

    A scale is written with every digit it needs to read back as the same float (Python's
    shortest round-trip ``repr``), so two scales never share a spelling, and so a cache key.
    """
    if input_size is None:
        return "native"
    if isinstance(input_size, float | np.floating):
        text = repr(float(input_size))
        return "x" + (text[:-2] if text.endswith(".0") else text)
    return f"{input_size[0]}x{input_size[1]}"


def format_scales(scales: Iterable[float], sep: str = ",") -> str:
    """Spell a scale list the way :func:`parse_scales` reads it (``"x1,x2"``)."""
    return sep.join(format_size(float(s)) for s in scales)


def _too_elongated(name: str, h: int, w: int, min_side: int, max_pixels: int) -> Exception:
    from gapsvm.core.decode import ImageReadError  # decode imports OpenCV: only when needed

    long, short = max(h, w), max(min(h, w), 1)
    return ImageReadError(
        name,
        f"extreme aspect ratio: the image is {w}x{h} pixels ({long / short:,.0f}:1); with "
        f"its short side at the network's minimum of {min_side} pixels it would need more "
        f"than the {max_pixels:,}-pixel input bound (at most {max_pixels // min_side**2:,}:1 "
        "fits); crop it into less elongated pieces",
    )


def _fit(h: int, w: int, max_pixels: int) -> tuple[int, int]:
    """The largest (h', w') with the aspect of (h, w) and at most ``max_pixels`` pixels."""
    f = math.sqrt(max_pixels / (h * w))
    th, tw = max(1, math.floor(h * f)), max(1, math.floor(w * f))
    while th * tw > max_pixels:  # floating-point rounding at an exact fit
        th, tw = (th - 1, tw) if th >= tw else (th, tw - 1)
    return th, tw


def target_size(
    image_hw: tuple[int, int],
    input_size: InputSize,
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int | None = MAX_INPUT_PIXELS,
    name: str = "<image>",
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
    max_pixels : int or None, default=MAX_INPUT_PIXELS
        The most pixels the result may have (``None``: no bound).
    name : str, default="<image>"
        The image's name, for the error.

    Returns
    -------
    (height, width) : tuple of int
        Fixed sizes are returned as given. Native and scaled sizes are upscaled, keeping the
        aspect ratio, until the shorter side is at least ``min_side``, and downscaled,
        keeping the aspect ratio, until they have at most ``max_pixels`` pixels.

    Raises
    ------
    gapsvm.core.decode.ImageReadError
        The image is so elongated that no size has both its short side at ``min_side`` or
        more and at most ``max_pixels`` pixels (a 1x20000 strip); the message names it.
    """
    if isinstance(input_size, tuple):
        return input_size
    h, w = (int(v) for v in image_hw)
    scale = 1.0 if input_size is None else float(input_size)
    if max_pixels is not None and (h * scale) * (w * scale) > max_pixels:
        th, tw = _fit(h, w, max_pixels)
        if min(th, tw) < min_side:
            raise _too_elongated(name, h, w, min_side, max_pixels)
        return th, tw
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    if min(th, tw) < min_side:
        # Raised from the unrounded size: a short side of 1.5 rounded to 1 would stretch
        # the long side half as much again, and could refuse an image that fits.
        # (A zero side, as a header guess may give, counts as one pixel, as rounding does.)
        up = min_side / (min(h * scale, w * scale) or 1.0)
        th, tw = max(min_side, round(h * scale * up)), max(min_side, round(w * scale * up))
        if max_pixels is not None and th * tw > max_pixels:
            raise _too_elongated(name, h, w, min_side, max_pixels)
    return th, tw


def downscale_note(
    image_hw: tuple[int, int],
    input_hw: tuple[int, int],
    input_size: InputSize,
    *,
    max_pixels: int = MAX_INPUT_PIXELS,
) -> str | None:
    """Say so when an image reached the network smaller than ``input_size`` asked.

    Parameters
    ----------
    image_hw, input_hw : tuple of int
        The image's own size and the size the network saw (an extraction result's record).
    input_size : tuple of int, float or None
        The input size that was asked for.
    max_pixels : int, default=MAX_INPUT_PIXELS
        The bound the image was fitted to, for the message.

    Returns
    -------
    str or None
        ``"downscaled from 4000x3000 to 1632x1224 ..."`` (width x height), or None when the
        image got the size it asked for.
    """
    if isinstance(input_size, tuple):
        return None
    (h, w), scale = image_hw, 1.0 if input_size is None else float(input_size)
    # The test target_size uses to downscale; below the bound nothing was (rounding aside).
    if (h * scale) * (w * scale) <= max_pixels or input_hw[0] * input_hw[1] > max_pixels:
        return None
    return (
        f"downscaled from {w * scale:.0f}x{h * scale:.0f} to {input_hw[1]}x{input_hw[0]} "
        f"pixels to fit the {max_pixels:,}-pixel bound on the network input"
    )
