"""The ``gapsvm`` command line: every command, the demo included.

Subcommands follow the user's path: ``weights install`` once, then ``features`` (images ->
cached GAP vectors in one file), ``train`` (a linear head, cross-validated, saved as
``.skops``), ``predict`` and ``cam`` (overlay PNGs), ``detect`` (every instance of a class
as scored boxes), ``report`` (one HTML page of CAMs), ``evaluate`` (CAMs against boxes).
``demo`` runs that path on images bundled with scikit-image. Each group of commands is one
module of this package; :mod:`gapsvm.cli.app` assembles them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gapsvm.cli import app, demo

__all__ = [
    "build_parser",
    "main",
]


#: Every command module, the demo last (it runs the others through :func:`gapsvm.cli.app.run`).
ALL_COMMANDS = (*app.COMMANDS, demo)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    return app.build_parser(ALL_COMMANDS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    return app.run(argv, ALL_COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
