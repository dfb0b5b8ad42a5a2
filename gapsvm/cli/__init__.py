"""Layer 5: the ``gapsvm`` command line, one module per group of commands.

:mod:`~gapsvm.cli._common` declares the options several commands share;
:mod:`~gapsvm.cli.app` assembles the command modules and runs one command line;
:mod:`~gapsvm.cli.main` adds the demo (which runs the others) and is the entry point.

Importing the command line loads argparse and little else: each command imports what it
runs when it runs, so ``gapsvm --help`` and usage errors come back at once, and
TensorFlow loads only for the commands that build a network.
"""

from __future__ import annotations

from typing import Any

from gapsvm.cli._common import CLIError
from gapsvm.cli.main import build_parser, main

__all__ = ["CLASSIFIERS", "CLIError", "build_parser", "main", "resolve_classifier"]


def __getattr__(name: str) -> Any:
    # The training workflow imports scikit-learn: only on demand.
    if name in ("CLASSIFIERS", "resolve_classifier"):
        from gapsvm.workflows import training

        return getattr(training, name)
    raise AttributeError(f"module 'gapsvm.cli' has no attribute {name!r}")
