"""gapsvm.network.distributed: extraction sharded over a real Dask LocalCluster (2 worker processes,
1 task thread each, TensorFlow pinned to 1 thread) on 40 real INRIA crops at 128x64.

The reference is the ordinary single-process extraction in the test process, where
TensorFlow uses every core: the distributed result must equal it up to float32 rounding. On
some CPUs it is bit-identical; on others (an AMD EPYC of family 25, for one) oneDNN sums in
an order that depends on the thread count and on how many images share a batch, which moves
the last bits (differences of about 1e-6 of a feature's size).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import distributed  # plain import: without the dask extra these tests fail, never skip
import numpy as np
import pytest

from gapsvm.cli.main import main
from gapsvm.core.cache import FeatureCache, content_key
from gapsvm.core.decode import ImageReadError
from gapsvm.network.backbone.build import built_backbones
from gapsvm.network.dask_cluster import busy_threads, local_cluster
from gapsvm.network.distributed import (
    extract_distributed,
    tf_busy_threads,
    warm_up_workers,
    worker_params,
)
from gapsvm.network.features_file import read_features_file
from gapsvm.network.featurizer import GapFeaturizer

pytestmark = pytest.mark.slow

SIZE = (128, 64)


def _featurizer(cache_dir) -> GapFeaturizer:
    return GapFeaturizer(input_size=SIZE, cache_dir=cache_dir, verbose=0)


def _same(got: np.ndarray, want: np.ndarray) -> None:
    """Equal up to float32 rounding: the same images through the same network (see above)."""
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def _images_run() -> int:
    return sum(b.images_run for b in built_backbones())


def _n_backbones() -> int:
    return len(built_backbones())


@pytest.fixture(scope="module")
def paths40(persons):
    paths, labels = persons
    sel = list(range(0, len(paths), 20))[:40]  # 20 person + 20 not_person, spread out
    assert len(set(labels[sel])) == 2
    return [paths[i] for i in sel]


@pytest.fixture(scope="module")
def reference(paths40, imagenet_ready):
    """The single-process result (no cache, TensorFlow unpinned in this process)."""
    return _featurizer(None).fit().extract(paths40)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """The cache the first test fills (and checks), reused where cache hits are the point."""
    return tmp_path_factory.mktemp("shared") / "cache"


@pytest.fixture(scope="module")
def client(imagenet_ready):
    with local_cluster(2, tf_threads=1, silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


def test_identical_to_single_process_one_backbone_per_worker(client, paths40, reference,
                                                             shared_cache):
    fz = _featurizer(shared_cache)
    warm = warm_up_workers(fz, client)
    assert len(warm) == 2
    # TensorFlow in each worker really runs on one thread, and on more than one here, so
    # the identity below holds across thread counts, not by accident of equal settings.
    p = worker_params(fz.get_params(), SIZE)
    assert set(client.run(tf_busy_threads, p, batch=2, side=128).values()) == {1}
    if (os.cpu_count() or 1) >= 2:
        assert tf_busy_threads(p, batch=2, side=128) >= 2

    before = client.run(_images_run)
    res = extract_distributed(fz, paths40, client, chunk_size=4)
    after = client.run(_images_run)

    _same(res.gap, reference.gap)
    assert res.image_hw == reference.image_hw and res.input_hw == reference.input_hw
    assert res.keys == reference.keys and None not in res.keys
    assert res.errors == [] and res.maps is None and res.n_computed == 40  # a fresh cache
    assert res.metadata == _featurizer(None).fit().metadata()  # what a features file records
    # Chunks come back in input order, covering every image once.
    assert [c["start"] for c in res.chunks] == list(range(0, 40, 4))
    # Each worker process built one backbone and reused it for all its chunks; together the
    # workers ran each image through the network exactly once.
    pids = {c["pid"] for c in res.chunks}
    assert len(pids) == 2
    for pid in pids:
        assert len({c["backbone_id"] for c in res.chunks if c["pid"] == pid}) == 1
    assert max(sum(c["pid"] == pid for c in res.chunks) for pid in pids) >= 2
    assert set(client.run(_n_backbones).values()) == {1}
    assert sum(after[a] - before.get(a, 0) for a in after) == 40

    # The workers wrote every image, maps included, into the shared cache.
    cache = FeatureCache(shared_cache, next(iter(warm.values()))["backbone_key"])
    for path, g in zip(paths40, res.gap, strict=True):
        with open(path, "rb") as fh:
            entry = cache.get(content_key(fh.read()), (128, 64), need_maps=True)
        assert entry is not None and entry.maps.shape == (8, 4, 512)
        assert np.array_equal(entry.gap, g)
    # A second run is served from the cache, identically.
    again = extract_distributed(fz, paths40, client, chunk_size=16)
    assert again.n_computed == 0
    _same(again.gap, reference.gap)


def test_another_client_in_the_same_process(client, paths40, reference, shared_cache):
    # A notebook often holds two clients; the most recent one becomes Dask's default, and a
    # run on the other one must not use its connections (that once hung the run forever).
    # Cache hits and one image per chunk: many chunks finish at once, as on a big cluster.
    out: dict = {}

    def run() -> None:
        out["res"] = extract_distributed(_featurizer(shared_cache), paths40, client, chunk_size=1)

    with distributed.Client(client.scheduler.address) as other:
        assert distributed.default_client() is other
        # A daemon thread: if the run hangs, the test fails instead of hanging with it.
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout=120)
    assert not t.is_alive(), "the run hung with a second client in the process"
    _same(out["res"].gap, reference.gap)


def test_unreadable_images_reported_like_single_process(client, paths40, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    X = [paths40[0], str(broken), paths40[1], str(tmp_path / "missing.png"), paths40[2]]
    cache = tmp_path / "cache"
    single = _featurizer(cache).fit()
    ref = single.extract(X, on_error="skip")
    res = extract_distributed(_featurizer(cache), X, client, chunk_size=2, on_error="skip")
    assert [(e.index, e.path, e.reason) for e in res.errors] == [
        (e.index, e.path, e.reason) for e in ref.errors
    ]
    assert [e.index for e in res.errors] == [1, 3]
    assert np.array_equal(res.ok, ref.ok)
    assert np.array_equal(res.gap[res.ok], ref.gap[ref.ok]) and np.isnan(res.gap[~res.ok]).all()
    # Plain parameters work as well as a featurizer.
    as_dict = extract_distributed({"input_size": SIZE, "cache_dir": cache, "verbose": 0}, X[:1],
                                  client)
    assert np.array_equal(as_dict.gap, ref.gap[:1])
    with pytest.raises(ImageReadError) as want:
        single.extract(X)
    with pytest.raises(ImageReadError) as got:
        extract_distributed(single, X, client, chunk_size=2)
    assert str(got.value) == str(want.value)
    assert len(got.value.errors) == 2
    # A featurizer fitted on other weights must not silently mix with the workers' network.
    single.weights_id_ = {"name": "other", "sha256": "0" * 64}
    with pytest.raises(ValueError, match="fitted with 0000"):
        extract_distributed(single, X[:1], client)


def test_cli_scheduler_matches_single_process_cli(client, paths40, tmp_path, capsys):
    data = tmp_path / "data"
    for p in paths40[:3] + paths40[-3:]:  # links, not copies, of the read-only data
        cls = os.path.basename(os.path.dirname(p))
        (data / cls).mkdir(parents=True, exist_ok=True)
        (data / cls / os.path.basename(p)).symlink_to(p)
    common = ["features", str(data), "--input-size", "128x64", "-q",
              "--cache-dir", str(tmp_path / "cache")]
    assert main([*common, "--out", str(tmp_path / "one.joblib")]) == 0
    addr = client.scheduler.address
    assert main([*common, "--out", str(tmp_path / "dask.joblib"), "--scheduler", addr,
                 "--chunk-size", "2"]) == 0
    assert "6 images" in capsys.readouterr().out
    one, dask = (read_features_file(tmp_path / f) for f in ("one.joblib", "dask.joblib"))
    assert np.array_equal(one["X"], dask["X"])
    for key in ("y", "paths", "class_names", "image_hw", "meta", "errors"):
        assert np.array_equal(one[key], dask[key]) if key == "y" else one[key] == dask[key]

    # A scheduler that is not there: one line, exit status 1, quickly.
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main([*common, "--scheduler", "tcp://127.0.0.1:9"]) == 1
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*common, "--scheduler", addr, "--workers", "2"])


def test_cli_workers_starts_and_closes_a_local_cluster(paths40, tmp_path, imagenet_ready):
    data = tmp_path / "flat"
    data.mkdir()
    for p in paths40[:4]:
        (data / os.path.basename(p)).symlink_to(p)
    out = tmp_path / "f.joblib"
    import multiprocessing

    children = set(multiprocessing.active_children())
    t0 = time.perf_counter()
    assert main(["features", str(data), "--input-size", "128x64", "-q", "--workers", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    assert time.perf_counter() - t0 < 60
    got = read_features_file(out)
    ref = _featurizer(None).fit().extract(sorted(str(data / n) for n in os.listdir(data)))
    _same(got["X"], ref.gap)
    # The cluster is gone: no worker process of the run is left behind.
    assert set(multiprocessing.active_children()) <= children


def test_killed_worker_costs_only_its_chunk(client, paths40, reference, tmp_path):
    cache = tmp_path / "cache"
    fz = _featurizer(cache)
    warm_up_workers(fz, client)
    pids = client.run(os.getpid)
    n = 24
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(extract_distributed, fz, paths40[:n], client, chunk_size=4)
        # Once the first chunk is in the cache, kill a worker that is busy with another.
        deadline = time.monotonic() + 60
        while len(list(cache.rglob("*.joblib"))) < 4:
            assert time.monotonic() < deadline and not run.done()
            time.sleep(0.05)
        busy = {}
        while not busy:
            busy = {a: [k for k in keys if str(k).startswith("gapsvm-chunk-")]
                    for a, keys in client.processing().items()}
            busy = {a: keys for a, keys in busy.items() if keys}
            assert not run.done(), "the run finished before a worker could be killed"
        victim = next(iter(busy))
        lost = {int(str(k).split("-")[2]) for k in busy[victim]}
        os.kill(pids[victim], signal.SIGKILL)
        res = run.result(timeout=240)

    # Complete and identical, and the chunk in flight was finished by another process.
    _same(res.gap, reference.gap[:n])
    assert res.errors == []
    assert [c["start"] for c in res.chunks] == list(range(0, n, 4))
    assert any(c["pid"] != pids[victim] for c in res.chunks if c["start"] in lost)
    # The nanny restarted the worker: the cluster is back to two processes.
    client.wait_for_workers(2, timeout=120)
    assert pids[victim] not in client.run(os.getpid).values()


def test_parameter_checks_need_no_cluster(paths40):
    with pytest.raises(ValueError, match="chunk_size"):
        extract_distributed(_featurizer(None), paths40, None, chunk_size=0)
    with pytest.raises(ValueError, match="on_error"):
        extract_distributed(_featurizer(None), paths40, None, on_error="ignore")
    with pytest.raises(TypeError, match="GapFeaturizer"):
        extract_distributed(object(), paths40, None)
    with pytest.raises(ValueError, match="tf_threads"):
        local_cluster(1, tf_threads=0)
    # The thread counter sees one busy thread for single-threaded work.
    assert busy_threads(lambda: sum(i * i for i in range(3_000_000))) == 1
