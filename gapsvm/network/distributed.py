"""Feature extraction sharded over a Dask distributed cluster.

Extraction is gapsvm's one expensive step (VGG16 on CPU: tens of images per second per
machine), and it is embarrassingly parallel. :func:`extract_distributed` cuts the image list
into chunks and runs each chunk as one Dask task; the client puts the results back in input
order and returns the same :class:`~gapsvm.featurizer.ExtractionResult` that
:meth:`GapFeaturizer.extract <gapsvm.featurizer.GapFeaturizer.extract>` returns. Dask does
the scheduling, load balancing and recovery: gapsvm adds no scheduler of its own.

How the work is split:

- A task is a chunk of ``chunk_size`` images. On its worker it calls
  :func:`~gapsvm.backbone.get_backbone`, which builds the network once per worker *process*
  and reuses it for every later chunk, then runs the same engine as a single-process run
  (:func:`~gapsvm.featurizer.iter_features`).
- Workers write every image to the feature cache (maps included, as ``cache_maps`` says) with
  the cache's atomic writes, and send back only GAP vectors, sizes and read errors. The
  cache directory must therefore be on storage every worker sees at the same path (NFS, a
  cluster file system); maps then never travel over the network, and a later CAM on the
  client reads them from the cache.
- A worker that dies mid-run costs its chunk only: the client collects each chunk as soon as
  it finishes, the nanny restarts the worker, the scheduler gives the lost chunk to another
  worker, and the images it had already written are cache hits the second time. Tasks that
  raise (a flaky network file system) are retried ``retries`` times.

Results are bit-identical to a single-process run with the same weights, precision and input
size. Measured with TensorFlow 2.21 on an Intel Xeon with AVX-512 and AMX: VGG16's GAP
vectors and maps, float32 and bfloat16, at 128x64, 224x224 and 512x512, do not change by a
bit with the batch an image is in (batches of 1, 3, 8, 16, shifted) nor with TensorFlow's
thread count (1, 2, 4), so chunking and pinning workers to one thread change nothing; the
tests check 1-thread workers against the unpinned test process on every run. oneDNN picks
its kernels by CPU instruction set, so the guarantee holds among machines of one CPU type;
across CPU types (AVX2 against AVX-512, say) features may differ in the last bits.

Threads: TensorFlow reads ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` once, when
it starts in a process, so they must be in the worker's environment before the first task
(:func:`local_cluster` sets them; for ``dask worker`` export them in its shell). Dask's own
``OMP_NUM_THREADS=1`` for workers does not limit TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gapsvm._version import __version__
from gapsvm.core import validation as val
from gapsvm.core.cache import PREPROCESS_VERSION, FeatureCache, resolve_cache_dir
from gapsvm.core.decode import ImageReadError
from gapsvm.core.sizes import format_size
from gapsvm.network.extraction import ExtractionResult, iter_features, raise_read_errors
from gapsvm.network.featurizer import GapFeaturizer, check_featurizer_params
from gapsvm.utils.progress import progress_bar

if TYPE_CHECKING:  # dask is an optional dependency (the ``dask`` extra)
    from distributed import Client, LocalCluster

__all__ = [
    "DistributedExtractionResult",
    "dask_client",
    "extract_distributed",
    "local_cluster",
    "warm_up_workers",
    "worker_env",
]


#: The featurizer parameters a worker needs (a GapFeaturizer's, also a GapClassifier's).
FEATURIZER_PARAMS = (
    "backbone", "weights", "input_size", "precision", "batch_size", "cache_dir", "cache_maps",
    "verbose",
)  # fmt: skip


_INSTALL_HINT = "distributed extraction needs Dask: pip install 'gapsvm[dask]'"


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from None
    return distributed


@dataclass
class DistributedExtractionResult(ExtractionResult):
    """An :class:`~gapsvm.featurizer.ExtractionResult` (``maps`` is always None) plus what the
    workers reported.

    Attributes
    ----------
    metadata : dict
        What :meth:`GapFeaturizer.metadata <gapsvm.featurizer.GapFeaturizer.metadata>` gives
        (backbone, layer, weights identity, precision, input size, versions), as the workers
        built it, so the client needs no backbone of its own.
    chunks : list of dict
        One record per chunk, in input order: ``start``, ``n``, ``n_computed``, ``seconds``
        (worker-side time), ``worker`` (address), ``pid``, ``backbone_id`` (``id()`` of the
        worker's backbone object) and ``images_run`` (images that process has run so far).
    """

    metadata: dict[str, Any] = field(default_factory=dict)
    chunks: list[dict[str, Any]] = field(default_factory=list)


def _params_of(featurizer: Any) -> dict[str, Any]:
    if isinstance(featurizer, Mapping):
        params = GapFeaturizer(**featurizer).get_params()
    else:
        missing = [k for k in FEATURIZER_PARAMS if not hasattr(featurizer, k)]
        if missing:
            raise TypeError(
                f"expected a GapFeaturizer, a GapClassifier or a dict of featurizer parameters, "
                f"got {type(featurizer).__name__} (no {', '.join(missing)})"
            )
        params = {k: getattr(featurizer, k) for k in FEATURIZER_PARAMS}
    check_featurizer_params(GapFeaturizer(**params))
    return params


def _for_workers(params: dict[str, Any], size: Any) -> dict[str, Any]:
    """Parameters as a worker must see them: paths absolute, the cache folder resolved here."""
    w = params["weights"]
    if w is not None and w != "imagenet":
        w = os.path.abspath(os.fspath(w))
    root = resolve_cache_dir(params["cache_dir"])
    return {
        "backbone": params["backbone"],
        "weights": w,
        "precision": params["precision"],
        "batch_size": int(params["batch_size"]),
        "cache_root": None if root is None else os.path.abspath(root),
        "cache_maps": bool(params["cache_maps"]),
        "input_size": size,
    }


def _worker_backbone(p: dict[str, Any]):
    from gapsvm.network.backbone.build import get_backbone

    return get_backbone(p["backbone"], p["weights"], p["precision"])


def _worker_info(bb: Any) -> dict[str, Any]:
    from gapsvm.network.backbone import build as backbone_module

    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        address = None
    return {
        "worker": address,
        "pid": os.getpid(),
        "backbone_id": id(bb),
        "n_backbones": len(backbone_module._BACKBONES),
        "images_run": bb.images_run,
        "backbone_key": bb.key,
        "backbone_metadata": bb.metadata(),
        "preprocess_version": PREPROCESS_VERSION,
        "gapsvm_version": __version__,
        "tf_intraop_env": os.environ.get("TF_NUM_INTRAOP_THREADS"),
    }


def _run_chunk(
    p: dict[str, Any], start: int, sources: list[Any], names: list[str]
) -> dict[str, Any]:
    """One Dask task: GAP vectors of ``sources`` (global positions ``start`` ...)."""
    t0 = time.perf_counter()
    bb = _worker_backbone(p)
    size = p["input_size"]
    cache = (
        None if p["cache_root"] is None
        else FeatureCache(p["cache_root"], bb.key, format_size(size))
    )
    n = len(sources)
    gap = np.full((n, bb.spec.channels), np.nan, dtype=np.float32)
    image_hw: list[tuple[int, int] | None] = [None] * n
    input_hw: list[tuple[int, int] | None] = [None] * n
    errors: list[tuple[int, str]] = []
    n_computed = 0
    for r in iter_features(
        sources, bb, input_size=size, cache=cache, batch_size=p["batch_size"],
        want_maps=False, cache_maps=p["cache_maps"], names=names,
    ):
        if r.error is not None:
            errors.append((r.index, r.error.reason))
        else:
            gap[r.index] = r.gap
            image_hw[r.index] = r.image_hw
            input_hw[r.index] = r.input_hw
            n_computed += not r.cached
    return {
        "start": start,
        "n": n,
        "gap": gap,
        "image_hw": image_hw,
        "input_hw": input_hw,
        "errors": errors,
        "n_computed": n_computed,
        "seconds": time.perf_counter() - t0,
        **_worker_info(bb),
    }


def _warm(p: dict[str, Any]) -> dict[str, Any]:
    bb = _worker_backbone(p)
    # One tiny batch traces the compiled forward pass, so timed work starts warm.
    bb(np.zeros((1, 32, 32, 3), dtype=np.uint8))
    return _worker_info(bb)


def _check_same_network(
    info: dict[str, Any], reference: dict[str, Any] | None, fitted_sha: str | None
) -> None:
    if info["preprocess_version"] != PREPROCESS_VERSION:
        raise RuntimeError(
            f"worker {info['worker']} runs gapsvm {info['gapsvm_version']} with preprocessing "
            f"version {info['preprocess_version']}; this client has {__version__} "
            f"(version {PREPROCESS_VERSION}): install the same gapsvm on every worker"
        )
    sha = info["backbone_metadata"]["weights"]["sha256"]
    if fitted_sha is not None and sha != fitted_sha:
        raise ValueError(
            f"worker {info['worker']} loaded weights with sha256 {sha}, but the featurizer was "
            f"fitted with {fitted_sha}: every worker must see the same weights file"
        )
    if reference is not None and info["backbone_key"] != reference["backbone_key"]:
        raise ValueError(
            f"workers disagree on the network: {reference['worker']} runs "
            f"{reference['backbone_key']}, {info['worker']} runs {info['backbone_key']}; "
            "every worker must see the same weights file"
        )


def extract_distributed(
    featurizer: GapFeaturizer | Mapping[str, Any] | Any,
    X: Any,
    client: Client,
    *,
    chunk_size: int = 64,
    on_error: str = "raise",
    input_size: Any = "fit",
    retries: int = 2,
) -> DistributedExtractionResult:
    """GAP features of ``X`` computed on a Dask cluster, identical to ``featurizer.extract(X)``.

    Parameters
    ----------
    featurizer : GapFeaturizer, GapClassifier or dict
        Where the featurizer parameters come from (backbone, weights, input size, precision,
        batch size, cache folder, ``cache_maps``, ``verbose``); it need not be fitted, and
        nothing is built on the client. When it is fitted, every worker's weights must have
        the content hash recorded at fit.
    X : path, sequence of paths or arrays, or ndarray of shape (n, h, w, 3)
        As for :meth:`GapFeaturizer.extract`. Paths must name the same files on every worker
        (relative paths are made absolute here); arrays are shipped with their chunk.
    client : distributed.Client
        A client of the cluster to run on.
    chunk_size : int, default=64
        Images per task. A lost worker costs at most one chunk; much smaller chunks add
        scheduling overhead (a few ms each), much larger ones balance load worse.
    on_error : {"raise", "skip"}, default="raise"
        As for :meth:`GapFeaturizer.extract`: ``"raise"`` computes and caches every readable
        image first, then raises the first :class:`~gapsvm.images.ImageReadError`.
    input_size : default="fit"
        Override the featurizer's ``input_size`` for this call.
    retries : int, default=2
        Times Dask reruns a chunk whose task raised. A chunk whose worker *died* is
        rescheduled by Dask without counting against this (up to the scheduler's
        ``distributed.scheduler.allowed-failures``, default 3, deaths per chunk).

    Returns
    -------
    DistributedExtractionResult
        An :class:`~gapsvm.featurizer.ExtractionResult` in input order, without maps (they
        stay in the cache, which must be on storage every worker sees), plus the workers'
        metadata and a record per chunk.

    Raises
    ------
    ImageReadError
        ``on_error="raise"`` and some image could not be read.
    ValueError
        Workers loaded different weights, or weights other than those fitted.
    distributed.KilledWorker
        One chunk killed its worker ``allowed-failures`` times (for example, out of memory).

    Examples
    --------
    >>> from dask.distributed import Client  # doctest: +SKIP
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> fz = GapFeaturizer(input_size=224, cache_dir="/shared/cache")  # doctest: +SKIP
    >>> res = extract_distributed(fz, paths, client, chunk_size=128)  # doctest: +SKIP
    >>> res.gap.shape  # doctest: +SKIP
    (1000000, 512)
    """
    distributed = _import_distributed()
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not isinstance(retries, int | np.integer) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    params = _params_of(featurizer)
    fitted_sha = None
    if isinstance(featurizer, GapFeaturizer) and hasattr(featurizer, "weights_id_"):
        fitted_sha = featurizer.weights_id_["sha256"]
    size = val.check_input_size(params["input_size"] if input_size == "fit" else input_size)
    p = _for_workers(params, size)
    sources, names = val.check_images(X)
    work = [os.path.abspath(s) if isinstance(s, str) else s for s in sources]
    n = len(sources)

    futures = {
        client.submit(
            _run_chunk, p, j, work[j : j + chunk_size], names[j : j + chunk_size],
            retries=int(retries), pure=False, key=f"gapsvm-chunk-{j}-{os.urandom(6).hex()}",
        ): j
        for j in range(0, n, chunk_size)
    }
    gap: np.ndarray | None = None
    image_hw: list[tuple[int, int] | None] = [None] * n
    input_hw: list[tuple[int, int] | None] = [None] * n
    errors: dict[int, ImageReadError] = {}
    records: list[dict[str, Any]] = []
    reference: dict[str, Any] | None = None
    n_computed = 0
    try:
        with progress_bar(n, int(params["verbose"]), "features") as bar:
            # Collected as they finish and released at once: a worker that dies later cannot
            # take finished results down with it. loop=: as_completed otherwise fetches on the
            # loop of the *default* client, and with a second client in this process that is
            # another thread's connection: Tornado's buffers break and the run hangs.
            ac = distributed.as_completed(futures, with_results=True, loop=client.loop)
            for fut, out in ac:
                del futures[fut]
                _check_same_network(out, reference, fitted_sha)
                reference = reference or out
                j, m = out["start"], out["n"]
                if gap is None:
                    gap = np.full((n, out["gap"].shape[1]), np.nan, dtype=np.float32)
                gap[j : j + m] = out["gap"]
                image_hw[j : j + m] = out["image_hw"]
                input_hw[j : j + m] = out["input_hw"]
                for i, reason in out["errors"]:
                    err = ImageReadError(names[j + i], reason)
                    err.index = j + i
                    errors[j + i] = err
                n_computed += out["n_computed"]
                records.append({
                    k: out[k] for k in ("start", "n", "n_computed", "seconds", "worker", "pid",
                                        "backbone_id", "images_run")
                })
                bar.update(m)
    finally:
        if futures:  # an error or an interrupt: do not leave the cluster busy for nothing
            client.cancel(list(futures))
    assert gap is not None and reference is not None  # n >= 1, so one chunk came back
    res = DistributedExtractionResult(
        gap=gap, maps=None, image_hw=image_hw, input_hw=input_hw,
        errors=[errors[i] for i in sorted(errors)], n_computed=n_computed,
        metadata={
            **reference["backbone_metadata"],
            "input_size": format_size(size),
            "preprocess_version": PREPROCESS_VERSION,
            "gapsvm_version": __version__,
        },
        chunks=sorted(records, key=lambda r: r["start"]),
    )
    if res.errors and on_error == "raise":
        raise_read_errors(res.errors)
    return res


def warm_up_workers(
    featurizer: GapFeaturizer | Mapping[str, Any] | Any, client: Client
) -> dict[str, dict[str, Any]]:
    """Build the backbone on every current worker (once per process) and trace its forward pass.

    Optional: :func:`extract_distributed` builds it on first use. Useful before timing, or to
    find a worker without weights before a long run.

    Parameters
    ----------
    featurizer : GapFeaturizer, GapClassifier or dict
    client : distributed.Client

    Returns
    -------
    dict
        Per worker address: ``pid``, ``backbone_id``, ``n_backbones`` (backbones built in that
        process), ``backbone_key``, ``tf_intraop_env`` and the backbone metadata.
    """
    _import_distributed()
    params = _params_of(featurizer)
    p = _for_workers(params, val.check_input_size(params["input_size"]))
    addresses = list(client.run(os.getpid))  # every worker, whatever the Dask version
    futures = [
        client.submit(_warm, p, workers=[a], allow_other_workers=False, pure=False)
        for a in addresses
    ]
    infos = client.gather(futures)
    reference = None
    for info in infos:
        _check_same_network(info, reference, None)
        reference = reference or info
    return {info["worker"]: info for info in infos}


def worker_env(tf_threads: int) -> dict[str, str]:
    """Environment that limits TensorFlow in a worker process to ``tf_threads`` threads.

    Parameters
    ----------
    tf_threads : int
        Intra-op and inter-op threads (TensorFlow reads them once, when it starts).

    Returns
    -------
    dict of str
    """
    if not isinstance(tf_threads, int | np.integer) or tf_threads < 1:
        raise ValueError(f"tf_threads must be a positive integer, got {tf_threads!r}")
    return {
        "TF_NUM_INTRAOP_THREADS": str(int(tf_threads)),
        "TF_NUM_INTEROP_THREADS": str(int(tf_threads)),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }


def local_cluster(
    n_workers: int, *, tf_threads: int | None = None, **kwargs: Any
) -> LocalCluster:
    """A ``LocalCluster`` of single-task worker processes with TensorFlow's threads set.

    Parameters
    ----------
    n_workers : int
        Worker processes. Each holds its own backbone (about 1 GB with TensorFlow).
    tf_threads : int, optional
        TensorFlow threads per worker; default: this machine's cores divided among the workers.
    **kwargs
        Passed on to ``distributed.LocalCluster`` (for example ``dashboard_address``).

    Returns
    -------
    distributed.LocalCluster
        Close it (or use it as a context manager) when done.
    """
    distributed = _import_distributed()
    if not isinstance(n_workers, int | np.integer) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    if tf_threads is None:
        tf_threads = max(1, (os.cpu_count() or 1) // int(n_workers))
    env = {**worker_env(tf_threads), **kwargs.pop("env", {})}
    # A free port: two clusters on one machine (two users, two runs) never collide on 8787.
    kwargs.setdefault("dashboard_address", ":0")
    # One task at a time per process: TensorFlow's own threads use the cores, and two tasks
    # in one process would only compete for them.
    return distributed.LocalCluster(
        n_workers=int(n_workers), threads_per_worker=1, processes=True, env=env, **kwargs
    )


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None, n_workers: int | None = None, *, tf_threads: int | None = None
) -> Iterator[Client]:
    """A client of an existing scheduler, or of a :func:`local_cluster` closed on exit.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``).
    n_workers : int, optional
        Without ``scheduler``: start a local cluster with this many workers.
    tf_threads : int, optional
        TensorFlow threads per local worker (see :func:`local_cluster`).

    Yields
    ------
    distributed.Client

    Raises
    ------
    ConnectionError
        The scheduler could not be reached (within ``distributed.comm.timeouts.connect``).
    """
    distributed = _import_distributed()
    if (scheduler is None) == (n_workers is None):
        raise ValueError("give either a scheduler address or a number of workers")
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler)
        except OSError as exc:  # also asyncio/Dask timeouts, which are OSError subclasses
            raise ConnectionError(
                f"cannot reach the Dask scheduler at {scheduler!r}: {exc}"
            ) from None
        with client:
            yield client
        return
    # Errors only: at close, Dask warns about every worker that takes more than a few
    # seconds to exit, which TensorFlow processes routinely do; that is not the user's concern.
    with local_cluster(
        n_workers, tf_threads=tf_threads, silence_logs=logging.ERROR
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def _busy_threads(run: Any, share: float = 0.15) -> int:
    """Threads of this process that each did more than ``share`` of the CPU work of ``run()``.

    Linux only (reads ``/proc/self/task``). Unlike CPU-time-over-wall-time, the count does
    not depend on what else the machine is doing, so it shows how many threads TensorFlow
    really used.
    """

    def ticks() -> dict[str, int]:
        out = {}
        for t in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{t}/stat") as fh:
                    f = fh.read().rsplit(")", 1)[1].split()
                out[t] = int(f[11]) + int(f[12])  # utime + stime
            except OSError:
                pass
        return out

    a = ticks()
    run()
    b = ticks()
    used = [b[t] - a.get(t, 0) for t in b]
    total = sum(used)
    return sum(u > share * total for u in used) if total else 0


def _tf_busy_threads(p: dict[str, Any], batch: int = 4, side: int = 224) -> int:
    """Worker-side: how many threads one forward pass of the backbone keeps busy."""
    bb = _worker_backbone(p)
    x = np.zeros((batch, side, side, 3), dtype=np.uint8)
    bb(x[:1])
    return _busy_threads(lambda: bb(x))
