"""Import paths of gapsvm 0.1's flat modules, kept working after the move into layers.

``import gapsvm.images`` (or ``from gapsvm.featurizer import GapFeaturizer``) still works: a
finder serves each old name as a module that reads its attributes from the new homes listed
in :data:`MOVED`. New code imports from the layered packages.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
from typing import Any

#: Old module -> the modules its public names now live in (searched in order).
MOVED: dict[str, tuple[str, ...]] = {
    "gapsvm.images": ("gapsvm.core.decode", "gapsvm.core.scan", "gapsvm.core.sizes",
                      "gapsvm.core.output"),
    "gapsvm.cam": ("gapsvm.core.cam", "gapsvm.core.overlay"),
    "gapsvm.boxes": ("gapsvm.core.boxes",),
    "gapsvm.metrics": ("gapsvm.core.metrics",),
    "gapsvm.cache": ("gapsvm.core.cache",),
    "gapsvm.head": ("gapsvm.core.head",),
    "gapsvm.safe_load": ("gapsvm.utils.safe_load",),
    "gapsvm.backbone": ("gapsvm.network.backbone",),
    "gapsvm.weights": ("gapsvm.network.backbone.weights",),
    "gapsvm.featurizer": ("gapsvm.network.featurizer", "gapsvm.network.extraction",
                          "gapsvm.network.features_file"),
    "gapsvm.distributed": ("gapsvm.network.distributed",),
    "gapsvm.persist": ("gapsvm.estimator.persist",),
    "gapsvm.evaluate": ("gapsvm.workflows.evaluate",),
    "gapsvm.report": ("gapsvm.workflows.report",),
    "gapsvm.demo": ("gapsvm.workflows.demo", "gapsvm.cli.demo"),
}  # fmt: skip


class _MovedModule(types.ModuleType):
    def __init__(self, name: str, homes: tuple[str, ...]) -> None:
        super().__init__(name, f"Moved: see {', '.join(homes)}.")
        self.__homes = homes

    def __getattr__(self, attr: str) -> Any:
        for home in self.__homes:
            module = importlib.import_module(home)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")

    def __dir__(self) -> list[str]:
        names: set[str] = set()
        for home in self.__homes:
            names.update(n for n in dir(importlib.import_module(home)) if not n.startswith("_"))
        return sorted(names)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        return _MovedModule(spec.name, MOVED[spec.name])

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    """Register the finder once (``import gapsvm`` does it)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
