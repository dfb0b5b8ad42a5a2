"""Feature extraction sharded over a Dask distributed cluster.

Extraction is gapsvm's one expensive step, and it is embarrassingly parallel.
:func:`extract_distributed` cuts the image list into chunks and runs each chunk as one Dask
task; the client puts the results back in input order and returns the same
:class:`~gapsvm.network.extraction.ExtractionResult` that :meth:`GapFeaturizer.extract
<gapsvm.network.featurizer.GapFeaturizer.extract>` returns. Dask does the scheduling, load
balancing and recovery: gapsvm adds no scheduler of its own.

How the work is split:

- A task is a chunk of ``chunk_size`` images. On its worker it calls
  :func:`~gapsvm.network.backbone.get_backbone`, which builds the network once per worker *process*
  and reuses it for every later chunk, then runs the same engine as a single-process run
  (:func:`~gapsvm.network.extraction.iter_features`).
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

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gapsvm._version import __version__
from gapsvm.core import validation as val
from gapsvm.core.cache import PREPROCESS_VERSION, resolve_cache_dir
from gapsvm.core.decode import ImageReadError
from gapsvm.network.backbone.build import Backbone, built_backbones, get_backbone
from gapsvm.network.dask_cluster import (
    busy_threads,
    dask_client,
    import_dask,
    local_cluster,
    worker_env,
)
from gapsvm.network.extraction import (
    ON_ERROR,
    ExtractionResult,
    collect,
    iter_features,
    raise_read_errors,
)
from gapsvm.network.featurizer import (
    FEATURIZER_PARAMS,
    GapFeaturizer,
    check_featurizer_params,
    features_metadata,
)
from gapsvm.network.prepare import open_cache
from gapsvm.utils.checks import check_choice, check_int
from gapsvm.utils.progress import progress_bar

if TYPE_CHECKING:  # dask is an optional dependency (the ``dask`` extra)
    from distributed import Client

__all__ = [
    "DistributedExtractionResult",
    "dask_client",
    "extract_distributed",
    "local_cluster",
    "tf_busy_threads",
    "warm_up_workers",
    "worker_env",
    "worker_params",
]


@dataclass
class DistributedExtractionResult(ExtractionResult):
    """An :class:`~gapsvm.network.extraction.ExtractionResult` (``maps`` is always None) plus
    what the workers reported.

    Attributes
    ----------
    metadata : dict
        What :meth:`GapFeaturizer.metadata <gapsvm.network.featurizer.GapFeaturizer.metadata>` gives
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


def worker_params(params: dict[str, Any], size: Any) -> dict[str, Any]:
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


def _worker_backbone(p: dict[str, Any]) -> Backbone:
    return get_backbone(p["backbone"], p["weights"], p["precision"])


def _worker_info(bb: Backbone) -> dict[str, Any]:
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        address = None
    return {
        "worker": address,
        "pid": os.getpid(),
        "backbone_id": id(bb),
        "n_backbones": len(built_backbones()),
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
    cache = open_cache(p["cache_root"], bb)
    results = iter_features(
        sources, bb, input_size=size, cache=cache, batch_size=p["batch_size"],
        want_maps=False, cache_maps=p["cache_maps"], names=names,
    )
    res = collect(results, len(sources), bb.spec.channels)
    return {
        "start": start,
        "n": len(sources),
        "gap": res.gap,
        "image_hw": res.image_hw,
        "input_hw": res.input_hw,
        "keys": res.keys,
        # Plain (index, reason) pairs travel back; the client rebuilds the errors.
        "errors": [(e.index, e.reason) for e in res.errors],
        "n_computed": res.n_computed,
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


def _fitted_sha(featurizer: Any) -> str | None:
    """The weights hash a fitted GapFeaturizer recorded, which every worker must match."""
    if isinstance(featurizer, GapFeaturizer) and hasattr(featurizer, "weights_id_"):
        return featurizer.weights_id_["sha256"]
    return None


#: What each chunk record in :attr:`DistributedExtractionResult.chunks` keeps.
_RECORD_KEYS = ("start", "n", "n_computed", "seconds", "worker", "pid", "backbone_id",
                "images_run")


class _Merged:
    """The client's side: chunk outputs put back in input order, the workers' network checked
    against the first chunk's (and the fitted hash)."""

    def __init__(self, names: list[str], fitted_sha: str | None) -> None:
        n = len(names)
        self.names, self.fitted_sha = names, fitted_sha
        self.gap: np.ndarray | None = None
        self.image_hw: list[tuple[int, int] | None] = [None] * n
        self.input_hw: list[tuple[int, int] | None] = [None] * n
        self.keys: list[str | None] = [None] * n
        self.errors: dict[int, ImageReadError] = {}
        self.records: list[dict[str, Any]] = []
        self.reference: dict[str, Any] | None = None
        self.n_computed = 0

    def add(self, out: dict[str, Any]) -> None:
        _check_same_network(out, self.reference, self.fitted_sha)
        self.reference = self.reference or out
        j, m = out["start"], out["n"]
        if self.gap is None:
            self.gap = np.full((len(self.names), out["gap"].shape[1]), np.nan, np.float32)
        self.gap[j : j + m] = out["gap"]
        self.image_hw[j : j + m] = out["image_hw"]
        self.input_hw[j : j + m] = out["input_hw"]
        self.keys[j : j + m] = out["keys"]
        for i, reason in out["errors"]:
            err = ImageReadError(self.names[j + i], reason)
            err.index = j + i
            self.errors[j + i] = err
        self.n_computed += out["n_computed"]
        self.records.append({k: out[k] for k in _RECORD_KEYS})

    def result(self, size: Any) -> DistributedExtractionResult:
        assert self.gap is not None and self.reference is not None  # n >= 1: a chunk came
        return DistributedExtractionResult(
            gap=self.gap, maps=None, image_hw=self.image_hw, input_hw=self.input_hw,
            errors=[self.errors[i] for i in sorted(self.errors)], n_computed=self.n_computed,
            keys=self.keys,
            metadata=features_metadata(self.reference["backbone_metadata"], size),
            chunks=sorted(self.records, key=lambda r: r["start"]),
        )


def _submit_chunks(
    client: Client, p: dict[str, Any], work: list[Any], names: list[str], chunk_size: int,
    retries: int,
) -> dict[Any, int]:
    """One Dask task per chunk: future -> its first position. Keys name the chunk (the tests
    and dashboards find them by it) and are unique per run."""
    return {
        client.submit(
            _run_chunk, p, j, work[j : j + chunk_size], names[j : j + chunk_size],
            retries=int(retries), pure=False, key=f"gapsvm-chunk-{j}-{os.urandom(6).hex()}",
        ): j
        for j in range(0, len(work), chunk_size)
    }


def _gather(
    client: Client, futures: dict[Any, int], merged: _Merged, progress: Callable[[int], Any]
) -> None:
    """Merge each chunk as it finishes; on an error or an interrupt, cancel the rest."""
    import distributed

    try:
        # Collected as they finish and released at once: a worker that dies later cannot
        # take finished results down with it. loop=: as_completed otherwise fetches on the
        # loop of the *default* client, and with a second client in this process that is
        # another thread's connection: Tornado's buffers break and the run hangs.
        ac = distributed.as_completed(futures, with_results=True, loop=client.loop)
        for fut, out in ac:
            del futures[fut]
            merged.add(out)
            progress(out["n"])
    finally:
        if futures:  # do not leave the cluster busy for nothing
            client.cancel(list(futures))


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
        image first, then raises the first :class:`~gapsvm.core.decode.ImageReadError`.
    input_size : default="fit"
        Override the featurizer's ``input_size`` for this call.
    retries : int, default=2
        Times Dask reruns a chunk whose task raised. A chunk whose worker *died* is
        rescheduled by Dask without counting against this (up to the scheduler's
        ``distributed.scheduler.allowed-failures``, default 3, deaths per chunk).

    Returns
    -------
    DistributedExtractionResult
        An :class:`~gapsvm.network.extraction.ExtractionResult` in input order, without maps
        (they stay in the cache, which must be on storage every worker sees), plus the workers'
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
    import_dask()
    check_choice(on_error, "on_error", ON_ERROR)
    check_int(chunk_size, "chunk_size")
    check_int(retries, "retries", minimum=0)
    params = _params_of(featurizer)
    size = val.check_input_size(params["input_size"] if input_size == "fit" else input_size)
    sources, names = val.check_images(X)
    work = [os.path.abspath(s) if isinstance(s, str) else s for s in sources]
    futures = _submit_chunks(client, worker_params(params, size), work, names, chunk_size,
                             retries)
    merged = _Merged(names, _fitted_sha(featurizer))
    with progress_bar(len(sources), int(params["verbose"]), "features") as bar:
        _gather(client, futures, merged, bar.update)
    res = merged.result(size)
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
    import_dask()
    params = _params_of(featurizer)
    p = worker_params(params, val.check_input_size(params["input_size"]))
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


def tf_busy_threads(p: dict[str, Any], batch: int = 4, side: int = 224) -> int:
    """How many threads one forward pass of the backbone keeps busy in this process (run it on
    a worker with ``client.run``), for the worker parameters ``p`` (:func:`worker_params`)."""
    bb = _worker_backbone(p)
    x = np.zeros((batch, side, side, 3), dtype=np.uint8)
    bb(x[:1])
    return busy_threads(lambda: bb(x))
