"""What the CPU offers: its feature flags, and whether it computes in bfloat16 natively.

One reader of ``/proc/cpuinfo`` for the library (the ``--precision bfloat16`` hint of
``gapsvm features``) and the benchmarks (their bfloat16 speed-up targets).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "BF16_FLAGS",
    "bf16_hardware",
    "cpu_flags",
]

#: The ``/proc/cpuinfo`` flags of native bfloat16 compute, strongest first: Intel AMX tiles,
#: then AVX512-BF16 dot products (e.g. AMD EPYC Zen 4).
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags listed in ``cpuinfo`` (empty where it cannot be read).

    Parameters
    ----------
    cpuinfo : str or path-like, default="/proc/cpuinfo"
        Linux's CPU description; other systems have none, and get an empty set.

    Returns
    -------
    set of str
        The words of the first ``flags`` line.
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def bf16_hardware(flags: set[str] | None = None) -> str | None:
    """The strongest bfloat16 instruction set among ``flags``, or None when there is none.

    Parameters
    ----------
    flags : set of str, optional
        CPU flags; default :func:`cpu_flags` of this machine.

    Returns
    -------
    str or None
        ``"amx_bf16"``, ``"avx512_bf16"`` or None.
    """
    flags = cpu_flags() if flags is None else flags
    return next((f for f in BF16_FLAGS if f in flags), None)
