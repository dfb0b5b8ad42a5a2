"""``gapsvm train``: a cross-validated linear head on a features file, saved as a model."""

from __future__ import annotations

import argparse
import time
from typing import Any

from gapsvm.cli._common import add_weights

# gapsvm.workflows.training imports scikit-learn: each function imports it when it runs, so
# `gapsvm train --help` and usage errors need no scikit-learn.

#: The prefix of the flags ``train`` passes on to the classifier (``--classifier__C 0.5``).
NESTED_PREFIX = "classifier__"

#: The short names of ``--classifier``: the keys of
#: :data:`gapsvm.workflows.training.CLASSIFIERS` (tests/test_cli_train.py checks they agree),
#: spelled here so that ``--help`` lists them without importing scikit-learn.
SHORT_NAMES = ("linearsvc", "logreg", "sgd", "ridge", "perceptron", "lda")


def classifier_arg(text: str) -> str:
    """``--classifier``: a short name, or a dotted name of a classifier class (checked now,
    so a wrong one is a usage error; its parameters are set later)."""
    if text.lower() in SHORT_NAMES:
        return text
    from gapsvm.workflows.training import resolve_classifier

    try:
        resolve_classifier(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def folds_arg(text: str) -> int:
    """``--cv``: 0 (no cross-validation) or 2 or more folds."""
    try:
        folds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    from gapsvm.utils.checks import check_folds  # no scikit-learn for a usage error

    try:
        return check_folds(folds)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: Any) -> None:
    """Register ``train`` on the subcommand action ``sub``."""
    p = sub.add_parser(
        "train",
        help="train a linear head on a features file",
        epilog=f"Any --{NESTED_PREFIX}PARAM VALUE sets a classifier parameter, e.g. "
        f"--{NESTED_PREFIX}max_iter 2000.",
    )
    p.add_argument("features", help="a features file written by `gapsvm features`")
    p.add_argument("--classifier", type=classifier_arg, default="linearsvc",
                   help=f"{'|'.join(SHORT_NAMES)} or a dotted class name (default linearsvc)")
    p.add_argument("--C", type=float, default=None,
                   help=f"shorthand for --{NESTED_PREFIX}C (default: the classifier's own)")
    p.add_argument("--cv", type=folds_arg, default=5,
                   help="cross-validation folds: 0 to skip, else 2 or more")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the cross-validation fold shuffle")
    add_weights(p, "auto", "the backbone weights: auto (default) takes them from the "
                "features file; give a weights file again when the features came from one")
    p.add_argument("--out", default="model.skops", help="the model file to write")
    # The tokens the parser does not know are the classifier's (main passes them as `extra`).
    p.set_defaults(handler=cmd_train, takes_nested_flags=True)


def cmd_train(args: argparse.Namespace) -> int:
    """`gapsvm train`: a cross-validated linear head on a features file, saved as a model."""
    from gapsvm.estimator.persist import save_model
    from gapsvm.workflows.training import nested_params, train_from_features

    t0 = time.perf_counter()
    params = nested_params(args.extra, NESTED_PREFIX)
    if args.C is not None:
        params.setdefault("C", args.C)
    model = train_from_features(args.features, classifier=args.classifier, params=params,
                                cv=args.cv, seed=args.seed, weights=args.weights)
    save_model(model, args.out, require_safe_load=True)
    print(f"model -> {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0
