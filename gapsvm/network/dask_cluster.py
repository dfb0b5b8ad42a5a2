"""Dask clusters for gapsvm's distributed extraction: worker processes whose TensorFlow
threads are set before it starts, a client of a scheduler or of a local cluster, and a count
of the threads that really work.

Dask is an optional dependency (the ``dask`` extra): it is imported when a function here
needs it, with an error that says how to install it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from gapsvm.utils.checks import check_int
from gapsvm.utils.extras import install_hint

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

__all__ = [
    "busy_threads",
    "dask_client",
    "import_dask",
    "local_cluster",
    "worker_env",
]


def _install_hint() -> str:
    return f"distributed extraction needs Dask (gapsvm's dask extra): {install_hint('dask')}"


def import_dask() -> ModuleType:
    """Import and return the ``distributed`` package.

    Raises
    ------
    ImportError
        Dask is not installed; the message says how to install it.
    """
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"{_install_hint()} ({exc})") from None
    return distributed


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
    tf_threads = check_int(tf_threads, "tf_threads")
    return {
        "TF_NUM_INTRAOP_THREADS": str(tf_threads),
        "TF_NUM_INTEROP_THREADS": str(tf_threads),
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
    distributed = import_dask()
    n_workers = check_int(n_workers, "n_workers")
    if tf_threads is None:
        tf_threads = max(1, (os.cpu_count() or 1) // n_workers)
    env = {**worker_env(tf_threads), **kwargs.pop("env", {})}
    # A free port: two clusters on one machine (two users, two runs) never collide on 8787.
    kwargs.setdefault("dashboard_address", ":0")
    # One task at a time per process: TensorFlow's own threads use the cores, and two tasks
    # in one process would only compete for them.
    return distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, env=env, **kwargs
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
    distributed = import_dask()
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


def busy_threads(run: Any, share: float = 0.15) -> int:
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
