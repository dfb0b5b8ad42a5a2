"""Capture what native code writes to file descriptor 2 during one call.

libjpeg (inside OpenCV) reports corrupt entropy-coded data only as a warning printed on the
process's stderr, naming no file, and still returns an image. To tie that warning to the file
being decoded, the decode runs with descriptor 2 pointed at a private in-memory file; the lines
asked for are returned and everything else (another thread's output written in the same
moment) is written back to the real stderr, so nothing is lost.

Descriptor 2 belongs to the whole process, so captured calls are serialised by a lock. gapsvm
decodes in one reader thread per process, so the lock is normally uncontended; the cost is a
handful of system calls per call.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.Lock()
_sink: tuple[int, int] | None = None  # (pid, fd): a forked child must not share the parent's


def _sink_fd() -> int:
    global _sink
    pid = os.getpid()
    if _sink is None or _sink[0] != pid:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("gapsvm-fd2", getattr(os, "MFD_CLOEXEC", 0))
        else:
            with tempfile.TemporaryFile() as fh:
                fd = os.dup(fh.fileno())
        _sink = (pid, fd)
    return _sink[1]


def _drain(sink: int) -> str:
    size = os.fstat(sink).st_size
    if not size:
        return ""
    os.lseek(sink, 0, os.SEEK_SET)
    data = os.read(sink, size)
    os.ftruncate(sink, 0)
    os.lseek(sink, 0, os.SEEK_SET)  # writes through descriptor 2 moved the shared offset
    return data.decode("utf-8", "replace")


def call_capturing_fd2(
    fn: Callable[..., Any], wanted: Callable[[str], bool], *args: Any
) -> tuple[Any, list[str]]:
    """Call ``fn(*args)`` with descriptor 2 captured; return its result and the captured lines
    for which ``wanted`` is true. Other lines go back to the real stderr.

    Where descriptor 2 cannot be redirected (closed), ``fn`` runs plainly and no line is
    returned.
    """
    with _LOCK:
        try:
            sink = _sink_fd()
            saved = os.dup(2)
        except OSError:
            return fn(*args), []
        failed = True
        try:
            os.dup2(sink, 2)
            try:
                result = fn(*args)
                failed = False
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
            text = _drain(sink)
            kept = [] if failed else [ln for ln in text.splitlines() if wanted(ln)]
            rest = "".join(
                ln for ln in text.splitlines(keepends=True) if failed or not wanted(ln)
            )
            if rest:
                os.write(2, rest.encode("utf-8", "replace"))
    return result, kept
