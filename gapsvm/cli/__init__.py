"""Layer 5: the ``gapsvm`` command line, one module per group of commands.

:mod:`~gapsvm.cli._common` declares the options several commands share;
:mod:`~gapsvm.cli.app` assembles the command modules and runs one command line;
:mod:`~gapsvm.cli.main` adds the demo (which runs the others) and is the entry point.
"""

from gapsvm.cli._common import CLIError
from gapsvm.cli.main import build_parser, main
from gapsvm.workflows.training import CLASSIFIERS, resolve_classifier

__all__ = ["CLASSIFIERS", "CLIError", "build_parser", "main", "resolve_classifier"]
