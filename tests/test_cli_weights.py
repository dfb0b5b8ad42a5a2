"""``gapsvm weights`` (gapsvm/cli/weights.py): where the weights are, and their content hash."""

from __future__ import annotations

import re

from _helpers import run_cli


def test_weights_info_and_verify(capsys, imagenet_ready) -> None:
    rc, out, _ = run_cli(capsys, "weights", "info")
    assert rc == 0 and "present" in out and "block5_conv3" in out
    rc, out, _ = run_cli(capsys, "weights", "verify")
    assert rc == 0
    sha = "d9a27cc1fc7f975ef8cff49180e794ccd7c4bc868ebb49740803b3bbaa8dbefd"
    assert re.search(rf"verified\s+imagenet {sha}", out), out
