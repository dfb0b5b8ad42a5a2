"""Layer 5: the ``gapsvm`` command line."""

from gapsvm.cli.main import CLIError, build_parser, main
from gapsvm.workflows.training import resolve_classifier

__all__ = ["CLIError", "build_parser", "main", "resolve_classifier"]
