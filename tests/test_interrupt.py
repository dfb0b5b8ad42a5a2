"""Killed runs resume exactly, concurrent runs never corrupt the cache, a full disk is a
clear error that leaves the cache valid.

SIGKILL at 20 random moments
    Each ``gapsvm features`` run would pay 5-10 s of TensorFlow import before computing
    anything, so the runs are forked from a small server process that has imported
    TensorFlow and ``gapsvm.cli`` once (no TensorFlow op has run in it, so forking is safe).
    Each child runs ``gapsvm.cli.main([...])`` -- exactly what the ``gapsvm`` entry point
    runs -- builds its own backbone (``weights=None``: seeded random VGG16), and is killed
    with SIGKILL at a moment drawn from a seeded RNG: a uniform point ``u`` of the work
    still missing, reached by waiting for ``floor(u * missing)`` new cache entries, plus a
    uniform delay of up to one image's time as calibrated from one uninterrupted run, so the
    kill lands anywhere inside an image's decode, network pass or cache write, or in the
    final features-file write. Counting progress rather than seconds keeps the moments
    spread over the run whatever the machine's load.

    The runs form one chain over one cache: each run resumes from what the killed runs
    before it left. After every kill: every cache entry loads and holds the uninterrupted
    run's features bit for bit, and every entry that existed before the run is the very same
    file (same inode and mtime: nothing finished was recomputed). When fewer than 3 images
    are left to interrupt, a seeded random half of the entries is deleted (as a user
    clearing part of the cache would) so that every kill has work to interrupt. The final run
    resumes without a kill: it computes exactly the images still missing (its "N computed"
    is counted) and writes features equal to the uninterrupted run bit for bit.

Concurrency
    Two ``gapsvm features`` processes from the same fork server, started together, over
    the same folder and cache (they compute the same images at the same moments).

Full disk
    A real tmpfs of a few kB when ``mount`` works (root); always, a write that fails with
    ENOSPC part-way through a file, via monkeypatch.

Batch size 1 keeps each image's network pass independent of which other images are
pending, which is what makes "bit for bit" a fair demand of a resumed run.
"""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import joblib
import numpy as np
import pytest

from gapsvm.cli.main import main
from gapsvm.core.cache import FeatureCache, content_key
from gapsvm.network.features_file import read_features_file

pytestmark = pytest.mark.slow

N_IMAGES = 30
N_KILLS = 20

SERVER = r"""
import json, os, sys, traceback
# The expensive imports, paid once; importing runs no TensorFlow op, so forking stays safe.
import tensorflow  # noqa: F401
import keras.applications.vgg16  # noqa: F401
import tqdm.auto  # noqa: F401
import gapsvm.network.featurizer  # noqa: F401
from gapsvm import cli


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


reply({"ready": True})
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "run":
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            rc = 99
            try:
                fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.close(fd)
                rc = cli.main(req["argv"])
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(rc)
        reply({"pid": pid})
    elif req["op"] == "wait":
        _, status = os.waitpid(req["pid"], 0)
        reply({
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        })
"""


class ForkServer:
    """Runs ``gapsvm.cli.main(argv)`` in forked children of one warmed-up interpreter."""

    def __init__(self, folder: Path) -> None:
        script = folder / "forkserver.py"
        script.write_text(SERVER)
        self.errlog = folder / "forkserver.err"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        with open(self.errlog, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, text=True, env=env,
            )
        self._read(timeout=300)

    def _read(self, timeout: float = 300) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"fork server gave no answer:\n{self.errlog.read_text()[-3000:]}")
        return json.loads(line)

    def _ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def start(self, argv: list[str], log: Path) -> int:
        return self._ask(op="run", argv=[str(a) for a in argv], log=str(log))["pid"]

    def wait(self, pid: int) -> dict:
        return self._ask(op="wait", pid=pid)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _running(pid: int) -> bool:
    """True until the process has exited (a zombie waiting to be reaped counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _entries(cache: Path) -> dict[str, tuple[int, int]]:
    """Finished cache entries (not temporary files) -> (inode, mtime_ns)."""
    out = {}
    for p in cache.glob("v2/*/*/*/*.joblib"):
        if not p.name.startswith("."):
            st = p.stat()
            out[str(p)] = (st.st_ino, st.st_mtime_ns)
    return out


def _tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".tmp-*")] if folder.exists() else []


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """30 small, all different PNGs in two class folders."""
    d = tmp_path_factory.mktemp("interrupt") / "data"
    rng = np.random.default_rng(2024)
    for i in range(N_IMAGES):
        (d / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 256, (24 + i % 5, 28 + i % 7, 3), dtype=np.uint8)
        cv2.imwrite(str(d / "ab"[i % 2] / f"img{i:02d}.png"), img)
    return d


def _argv(folder: Path, cache: Path, out: Path) -> list:
    return ["features", folder, "--weights", "none", "--input-size", "32x32",
            "--batch-size", "1", "--cache-dir", cache, "--out", out, "-q"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = ForkServer(tmp_path_factory.mktemp("forkserver"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def reference(server, folder, tmp_path_factory):
    """One uninterrupted run: its features, and the time it takes per image."""
    d = tmp_path_factory.mktemp("reference")
    cache, out = d / "cache", d / "features.joblib"
    t0 = time.perf_counter()
    pid = server.start(_argv(folder, cache, out), d / "log")
    while not _entries(cache) and _running(pid) and time.perf_counter() - t0 < 300:
        time.sleep(0.002)
    t_first = time.perf_counter()
    assert server.wait(pid) == {"signal": None, "rc": 0}, (d / "log").read_text()
    t_end = time.perf_counter()
    data = read_features_file(out)
    by_key = {
        content_key((folder / rel).read_bytes()): row
        for rel, row in zip(data["paths"], data["X"], strict=True)
    }
    assert len(by_key) == N_IMAGES  # all different contents
    return {
        "data": data,
        "by_key": by_key,
        "per_image": (t_end - t_first) / (N_IMAGES - 1),
        "startup": t_first - t0,
    }


def _check_cache(cache: Path, reference: dict) -> int:
    """Every finished entry loads, belongs to an input image and holds its exact features."""
    n = 0
    for p in cache.glob("v2/*/*/*/*.joblib"):
        if p.name.startswith("."):
            continue
        size_dir = p.parent.parent
        fc = FeatureCache(cache, size_dir.parent.name, channels=512, stride=16)
        input_hw = tuple(int(v) for v in size_dir.name.split("x"))
        entry = fc.get(p.stem, input_hw, need_maps=True)
        assert entry is not None, f"cache entry {p} does not load"
        assert p.stem in reference["by_key"], f"{p} is not the key of any input image"
        assert entry.gap.tobytes() == reference["by_key"][p.stem].tobytes(), p
        assert entry.maps.shape == (2, 2, 512) and entry.input_hw == (32, 32)
        n += 1
    return n


def _resume_and_check(server, folder, cache, d, reference, tag) -> int:
    missing = N_IMAGES - len(_entries(cache))
    out = d / f"resumed-{tag}.joblib"
    pid = server.start(_argv(folder, cache, out), d / f"log-resume-{tag}")
    res = server.wait(pid)
    log = (d / f"log-resume-{tag}").read_text()
    assert res == {"signal": None, "rc": 0}, log
    # The resumed run computes exactly the images no earlier run finished.
    assert (f"{N_IMAGES} images -> {out} ({missing} computed, {N_IMAGES - missing} from "
            "cache") in log, (missing, log)
    data = read_features_file(out)
    ref = reference["data"]
    assert data["paths"] == ref["paths"] and list(data["y"]) == list(ref["y"])
    assert data["X"].tobytes() == ref["X"].tobytes()  # bit for bit
    return missing


# -- SIGKILL at random moments -------------------------------------------------------------
def test_sigkill_at_20_random_moments_then_resume_exactly(server, folder, reference, tmp_path):
    rng = np.random.default_rng(20161130)
    per_image = reference["per_image"]
    stats = []  # (killed while running, entries before, entries after)
    cache = tmp_path / "cache"
    n_dropped = 0
    for k in range(N_KILLS + 1):
        done = sorted(_entries(cache))
        if N_IMAGES - len(done) < 3:  # too little left to interrupt: drop half the entries
            for p in rng.choice(done, size=len(done) // 2, replace=False):
                os.unlink(p)
            n_dropped += len(done) // 2
        if k == N_KILLS:
            break
        before = _entries(cache)
        missing = N_IMAGES - len(before)
        out = tmp_path / f"killed{k}.joblib"
        n_wait = int(rng.uniform(0.0, 1.0) * missing)
        t0 = time.perf_counter()
        pid = server.start(_argv(folder, cache, out), tmp_path / f"log{k}")
        try:
            while len(_entries(cache)) - len(before) < n_wait and _running(pid):
                assert time.perf_counter() - t0 < 300, "the run is not making progress"
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, per_image))
            was_running = _running(pid)
        finally:
            os.kill(pid, signal.SIGKILL)
            res = server.wait(pid)
        assert res["signal"] == signal.SIGKILL or res["rc"] == 0, res
        after = _entries(cache)
        # Entries from earlier runs are untouched: the same files, never recomputed.
        for path, ident in before.items():
            assert after.get(path) == ident, f"kill {k}: {path} was rewritten"
        assert _check_cache(cache, reference) == len(after)
        if out.exists():  # a killed run never leaves a half-written features file
            assert read_features_file(out)["X"].tobytes() == reference["data"]["X"].tobytes()
        stats.append((was_running and res["signal"] == signal.SIGKILL, len(before), len(after)))
    resumed = _resume_and_check(server, folder, cache, tmp_path, reference, "final")

    mid_run = [s for s in stats if s[0] and s[1] < s[2] < N_IMAGES]
    print(f"\nkills (killed live, entries before, after): {stats}\n{n_dropped} entries "
          f"dropped; the final run computed {resumed}; per image {per_image * 1000:.0f} ms, "
          f"start-up {reference['startup']:.1f} s")
    # Kill moments are random: a few may land after a run has ended. Most must not.
    assert sum(s[0] for s in stats) >= 15, stats
    assert len(mid_run) >= 10, stats  # killed in the middle of its work


# -- two processes at once -----------------------------------------------------------------
def test_two_concurrent_processes_share_one_cache_safely(server, folder, reference, tmp_path):
    cache = tmp_path / "cache"
    outs = [tmp_path / "one.joblib", tmp_path / "two.joblib"]
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    pids = [server.start(_argv(folder, cache, out), log) for out, log in zip(outs, logs,
                                                                             strict=True)]
    results = [server.wait(pid) for pid in pids]
    computed = []
    for res, out, log in zip(results, outs, logs, strict=True):
        text = log.read_text()
        assert res == {"signal": None, "rc": 0}, text
        data = read_features_file(out)
        assert data["X"].tobytes() == reference["data"]["X"].tobytes()
        (summary,) = [line for line in text.splitlines() if " images -> " in line]
        computed.append(int(summary.split(" (", 1)[1].split(" computed")[0]))
    assert _check_cache(cache, reference) == N_IMAGES
    assert _tmp_files(cache) == [] and _tmp_files(tmp_path) == []
    assert sum(computed) >= N_IMAGES  # every image was computed by at least one of them
    print(f"\nconcurrent runs computed {computed} of {N_IMAGES} images each")


# -- full disk -----------------------------------------------------------------------------
def _enospc_after(n_ok: int, real_dump):
    """A joblib.dump that writes n_ok files, then fails half-way through the next one."""
    calls = {"n": 0}

    def dump(value, fh, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_ok:
            fh.write(b"\x80\x04partial")  # a half-written file, as a full disk leaves it
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_dump(value, fh, *args, **kwargs)

    return dump


def test_disk_full_while_caching_is_a_clear_error_and_the_cache_stays_valid(
    folder, reference, tmp_path, monkeypatch, capsys
):
    cache, out = tmp_path / "cache", tmp_path / "features.joblib"
    monkeypatch.setattr(joblib, "dump", _enospc_after(7, joblib.dump))
    rc = main([str(a) for a in _argv(folder, cache, out)])
    stderr = capsys.readouterr().err
    assert rc == 1
    assert "gapsvm features: error: [Errno 28] cannot write feature cache entry " in stderr
    assert "(No space left on device); entries already written stay valid" in stderr
    assert _tmp_files(cache) == [] and not out.exists()
    assert _check_cache(cache, reference) == 7
    monkeypatch.undo()  # space freed: the rerun computes only the rest
    assert main([str(a) for a in _argv(folder, cache, out)]) == 0
    assert f"({N_IMAGES - 7} computed, 7 from cache" in capsys.readouterr().out
    assert read_features_file(out)["X"].tobytes() == reference["data"]["X"].tobytes()


def test_disk_full_while_writing_the_features_file_keeps_the_old_one(
    folder, reference, tmp_path, monkeypatch, capsys
):
    cache, out = tmp_path / "cache", tmp_path / "features.joblib"
    assert main([str(a) for a in _argv(folder, cache, out)]) == 0
    before = out.read_bytes()
    monkeypatch.setattr(joblib, "dump", _enospc_after(0, joblib.dump))  # every image cached
    rc = main([str(a) for a in _argv(folder, cache, out)])
    stderr = capsys.readouterr().err
    assert rc == 1
    assert (f"gapsvm features: error: [Errno 28] cannot write features file {str(out)!r} (No "
            "space left on device); every computed image is in the feature cache, so a rerun "
            "only writes the file") in stderr
    assert out.read_bytes() == before and _tmp_files(tmp_path) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 48 kB tmpfs (needs root and mount); skipped elsewhere: the ENOSPC tests above
    cover the same code path without it."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_real_full_tmpfs(folder, reference, tmp_path, tiny_tmpfs, capsys):
    out = tmp_path / "features.joblib"
    rc = main([str(a) for a in _argv(folder, tiny_tmpfs, out)])
    stderr = capsys.readouterr().err
    assert rc == 1 and "(No space left on device); entries already written stay valid" in stderr
    assert _tmp_files(tiny_tmpfs) == [] and not out.exists()
    n = _check_cache(tiny_tmpfs, reference)
    assert 0 < n < N_IMAGES
    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_tmpfs)], check=True)
    assert main([str(a) for a in _argv(folder, tiny_tmpfs, out)]) == 0
    assert f"({N_IMAGES - n} computed, {n} from cache" in capsys.readouterr().out
    assert read_features_file(out)["X"].tobytes() == reference["data"]["X"].tobytes()
