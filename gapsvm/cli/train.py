"""``gapsvm train``: a cross-validated linear head on a features file, saved as a model."""

from __future__ import annotations

import argparse
import time
from typing import Any

from gapsvm.cli._common import add_weights
from gapsvm.workflows.training import CLASSIFIERS, nested_params, train_from_features

#: The prefix of the flags ``train`` passes on to the classifier (``--classifier__C 0.5``).
NESTED_PREFIX = "classifier__"


def add_parser(sub: Any) -> None:
    """Register ``train`` on the subcommand action ``sub``."""
    p = sub.add_parser(
        "train",
        help="train a linear head on a features file",
        epilog=f"Any --{NESTED_PREFIX}PARAM VALUE sets a classifier parameter, e.g. "
        f"--{NESTED_PREFIX}max_iter 2000.",
    )
    p.add_argument("features")
    p.add_argument("--classifier", default="linearsvc",
                   help=f"{'|'.join(CLASSIFIERS)} or a dotted class name (default linearsvc)")
    p.add_argument("--C", type=float, default=None, help=f"shorthand for --{NESTED_PREFIX}C")
    p.add_argument("--cv", type=int, default=5, help="cross-validation folds (0 to skip)")
    p.add_argument("--seed", type=int, default=0)
    add_weights(p, "auto", "weights file, when the features came from one")
    p.add_argument("--out", default="model.skops")
    # The tokens the parser does not know are the classifier's (main passes them as `extra`).
    p.set_defaults(handler=cmd_train, takes_nested_flags=True)


def cmd_train(args: argparse.Namespace) -> int:
    """`gapsvm train`: a cross-validated linear head on a features file, saved as a model."""
    from gapsvm.estimator.persist import save_model

    t0 = time.perf_counter()
    params = nested_params(args.extra, NESTED_PREFIX)
    if args.C is not None:
        params.setdefault("C", args.C)
    model = train_from_features(args.features, classifier=args.classifier, params=params,
                                cv=args.cv, seed=args.seed, weights=args.weights)
    save_model(model, args.out)
    print(f"model -> {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0
