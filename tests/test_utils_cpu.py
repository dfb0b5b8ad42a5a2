"""CPU flags and bfloat16 hardware (gapsvm/utils/cpu.py), read from fake ``/proc/cpuinfo``."""

from __future__ import annotations

import pytest

from gapsvm.utils.cpu import bf16_hardware, cpu_flags

CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
model name\t: {model}
flags\t\t: fpu vme sse sse2 avx avx2 {extra}
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu ignored_second_cpu_line
"""


@pytest.mark.parametrize("extra, expected", [
    ("avx512f amx_bf16 amx_tile avx512_bf16", "amx_bf16"),   # Sapphire Rapids and later
    ("avx512f avx512_bf16", "avx512_bf16"),                    # AMD EPYC Zen 4
    ("avx512f avx512_vnni", None),                             # AVX-512 without bfloat16
    ("", None),
])
def test_bf16_hardware_from_a_fake_cpuinfo(tmp_path, extra, expected) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(vendor="v", model="m", extra=extra), encoding="utf-8")
    flags = cpu_flags(path)
    assert {"fpu", "avx2"} <= flags and "ignored_second_cpu_line" not in flags
    assert set(extra.split()) <= flags
    assert bf16_hardware(flags) == expected


def test_no_cpuinfo_means_no_flags(tmp_path) -> None:
    assert cpu_flags(tmp_path / "missing") == set()
    (tmp_path / "noflags").write_text("processor\t: 0\n", encoding="utf-8")
    assert cpu_flags(tmp_path / "noflags") == set()
    assert bf16_hardware(set()) is None
