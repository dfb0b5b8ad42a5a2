"""The command line assembled from its command modules, and the runner of one command line.

Each command module (:mod:`~gapsvm.cli.weights`, :mod:`~gapsvm.cli.features`, ...) has an
``add_parser(sub)`` that declares its subcommand(s) and sets ``handler``, the function that
runs it. :func:`run` parses, runs the handler and turns the errors a user can fix into one
line on standard error. ``gapsvm demo`` runs its steps through :func:`run`, so the demo
module sits above this one (:mod:`gapsvm.cli.main` adds it) and the imports stay one-way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from gapsvm.cli import detect, evaluate, features, predict, report, train, weights
from gapsvm.cli._common import CLIError
from gapsvm.cli._tensorflow import quiet_tensorflow

__all__ = [
    "COMMANDS",
    "HelpFormatter",
    "build_parser",
    "run",
]


#: The command modules, in the order ``gapsvm --help`` lists them (the demo comes on top,
#: in :mod:`gapsvm.cli.main`).
COMMANDS: tuple[ModuleType, ...] = (weights, features, train, predict, detect, report, evaluate)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's ``ArgumentDefaultsHelpFormatter``, where the help does not already say it.

    An option whose help mentions its default keeps its own wording (``native (default)``);
    a flag (default off) or an option without a default (None: its help says what happens)
    gets no ``(default: None)``; a required option says so.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.required and action.option_strings:
            return f"{text} (required)"
        if "default" in text or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


_VERBOSE_HELP = "also show TensorFlow's own log lines (hidden by default)"


def build_parser(commands: Sequence[ModuleType] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser of ``commands`` (modules with an ``add_parser(sub)``)."""
    from gapsvm._version import __version__

    p = argparse.ArgumentParser(
        prog="gapsvm",
        description="Where does an image classifier look? VGG16 GAP features, a linear "
        "scikit-learn head, class activation maps.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"gapsvm {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands:
        module.add_parser(sub)
    for parser in sub.choices.values():
        parser.formatter_class = HelpFormatter
        # `gapsvm features ... -v` as well as `gapsvm -v features ...`; SUPPRESS keeps the
        # subcommand from resetting a -v given before it.
        parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                            help=_VERBOSE_HELP)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions reported on one line: bad input, files, weights, models.

    gapsvm's own are ValueErrors (ImageReadError, ModelLoadError, NotLinearError) or OSErrors
    (CacheWriteError), except WeightsError, which only its module raises, so it is taken
    from there once loaded. Nothing is imported here: an error found before the model loads
    (scikit-learn, about a second) is reported at once.
    """
    errors: list[type[BaseException]] = [CLIError, OSError, ValueError]
    weights = sys.modules.get("gapsvm.network.backbone.weights")
    if weights is not None:
        errors.append(weights.WeightsError)
    return tuple(errors)


def run(argv: Sequence[str] | None = None, commands: Sequence[ModuleType] = COMMANDS) -> int:
    """Run one command line of ``commands``; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Without the program name; default ``sys.argv[1:]``.
    commands : sequence of module, default=COMMANDS

    Returns
    -------
    int
        0 on success, 1 after an error (printed as ``gapsvm CMD: error: ...``), 130 when
        interrupted. Usage errors exit through argparse (status 2).
    """
    parser = build_parser(commands)
    args, extra = parser.parse_known_args(argv)
    # Only train takes flags the parser does not know: its --classifier__PARAM ones.
    if extra and not getattr(args, "takes_nested_flags", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = list(extra)
    quiet_tensorflow(args.verbose)  # before any command imports TensorFlow
    try:
        return args.handler(args)
    except _user_errors() as exc:
        print(f"gapsvm {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished images are in the cache", file=sys.stderr)
        return 130
