"""``gapsvm report``: one self-contained HTML page of CAMs, model card and confusion matrix."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gapsvm.cli._common import (
    add_alpha,
    add_featurizer_flags,
    add_model,
    add_target,
    load_model_for,
    verbose,
    whole_number,
)


def add_parser(sub: Any) -> None:
    """Register ``report`` on the subcommand action ``sub``."""
    r = sub.add_parser("report", help="write one HTML page: model card, confusion matrix, "
                       "CAM overlays of a folder")
    add_model(r)
    r.add_argument("images_dir", help="folder with one sub-folder per class, or a flat folder")
    r.add_argument("--out", required=True, help="folder for index.html")
    add_featurizer_flags(r, fit_defaults=True)
    add_target(r, "class whose map is drawn for every image, or 'all' for a row of every "
               "class's maps per image, each labelled with its score (default: each image's "
               "predicted class)")
    r.add_argument("--boxes", metavar="CSV", default=None, help="ground-truth boxes "
                   "(filename,label,x_min,y_min,x_max,y_max; exclusive maxima) for a "
                   "localisation check (default: no check)")
    add_alpha(r)
    r.add_argument("--max-per-class", type=_per_class, default=200,
                   help="overlays shown per class, misclassified first (0: all)")
    r.add_argument("--title", default=None,
                   help="the page's title (default: 'gapsvm report: ' and the folder's name)")
    r.add_argument("--note", action="append", help="a paragraph under the title (repeatable; "
                   "default: none)")
    r.add_argument("--notes", metavar="FILE", default=None,
                   help="a text file of paragraphs (blank-line separated) shown under the title "
                        "(default: none)")
    r.set_defaults(handler=cmd_report)


def _per_class(text: str) -> int:
    """``--max-per-class``: a count of overlays, 0 for all."""
    return whole_number(text, 0, "{value} overlays: give 0 (all) or a positive count")


def _notes(args: argparse.Namespace) -> list[str]:
    """``--note`` paragraphs, then those of ``--notes FILE`` (blank-line separated)."""
    notes = list(args.note or ())
    if args.notes:
        with open(args.notes, encoding="utf-8") as fh:
            notes += [p.strip() for p in fh.read().split("\n\n") if p.strip()]
    return notes


def _announce(args: argparse.Namespace) -> None:
    """Scan the folder before the model loads, which imports scikit-learn (about a second):
    the user sees at once what the report covers, and a folder without images fails at once
    rather than after the load."""
    from gapsvm.core.scan import load_directory

    paths, labels, names = load_directory(args.images_dir)
    if not args.quiet:
        kind = "a flat folder" if labels is None else f"{len(names)} classes"
        print(f"report: {len(paths)} image(s) in {args.images_dir} ({kind}); loading "
              f"{args.model}", file=sys.stderr, flush=True)


def cmd_report(args: argparse.Namespace) -> int:
    """`gapsvm report`: one self-contained HTML page of CAMs, model card and confusion matrix."""
    notes = _notes(args)
    _announce(args)
    from gapsvm.workflows.report import build_report

    model = load_model_for(args)
    rep = build_report(
        model, args.images_dir, args.out, target=args.target, input_size=model.input_size,
        boxes=args.boxes, alpha=args.alpha, max_per_class=args.max_per_class or None,
        title=args.title, notes=notes, verbose=verbose(args),
    )
    for line in rep.findings:
        print(line)
    for path, reason in rep.errors:
        print(f"{path}: {reason}", file=sys.stderr)
    print(f"report -> {rep.path}")
    return 1 if rep.errors and (args.strict or not rep.entries) else 0
