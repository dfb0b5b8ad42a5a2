"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

Readers see the old file or the new one, never half of one; a process killed mid-write leaves
only a ``.tmp-*`` file, which nothing reads. ``tempfile.mkstemp`` creates files readable by
the owner alone, so the final file gets the permissions the user's umask asks for, as an
``open()`` would give it: a cache or model shared by a group stays readable.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Read once: os.umask can only be read by setting it, which is not thread-safe later on.
_UMASK = os.umask(0)


os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        The final file; its folder is created if needed.
    suffix : str, optional
        The temporary file's ending (some writers choose the format by it); default the
        final file's.

    Yields
    ------
    str
        Where to write. On an exception it is deleted and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=".tmp-", suffix=path.suffix if suffix is None else suffix
    )
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
