"""``gapsvm train``: a cross-validated linear head on a features file, saved as a model.

``--hard-negatives DIR`` then mines the windows of person-free images the head scores
highest and refits (:func:`gapsvm.workflows.detection.mine_hard_negatives`);
``--from-boxes BOXES_CSV --images DIR`` trains on crops cut from boxed photos instead of a
features file (:func:`gapsvm.workflows.detection.train_from_boxes`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from gapsvm.cli._common import (
    add_cache_dir,
    add_target,
    add_weights,
    positive_int,
    scale_list_arg,
    size_arg,
    whole_number,
)

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


def _add_detection_flags(p: argparse.ArgumentParser) -> None:
    """Hard-negative mining after training, and box supervision instead of a features file."""
    g = p.add_argument_group("hard-negative mining (after training on a features file; the "
                             "--mining flags also apply to --from-boxes, which mines its own "
                             "photos)")
    g.add_argument("--hard-negatives", metavar="DIR", default=None,
                   help="a folder of images with no instance of --target (e.g. INRIA's "
                        "not_person crops): the windows the head scores highest there are "
                        "added as negatives and the head refit (default: no mining)")
    g.add_argument("--mining-rounds", default=None, metavar="N",
                   type=lambda t: whole_number(t, 0, "{value} is negative"),
                   help="rounds of mining and refitting (default 2; 0: none)")
    g.add_argument("--mining-scales", type=scale_list_arg, default=None, metavar="LIST",
                   help="input scales of each image's own size (default 2,3,4 for the "
                        "small crops of --hard-negatives, 2,2.5 for --from-boxes photos, "
                        "as detect's)")
    g.add_argument("--mining-per-image", type=positive_int, default=None, metavar="N",
                   help="windows added per negative image and round, at most (default 5)")
    add_target(g, "the class mined against (default: the second of two classes, e.g. "
                  "person of not_person/person)")
    g = p.add_argument_group("box supervision (instead of a features file)")
    g.add_argument("--from-boxes", metavar="BOXES_CSV", default=None,
                   help="train on crops of the boxes in this CSV and on random windows "
                        "overlapping no box (IoU < 0.1), then mine the photos' box-free "
                        "windows (--mining-rounds); no cross-validation, as crops of one "
                        "photo would fall on both sides of a fold (default: train on the "
                        "features file)")
    g.add_argument("--images", metavar="DIR", default=None,
                   help="the folder the file names of --from-boxes are relative to "
                        "(required with --from-boxes; no default)")
    g.add_argument("--input-size", type=size_arg, default=None,
                   help="network input the crops are resized to (default 128x64)")
    g.add_argument("--negatives-per-image", default=None, metavar="N",
                   type=lambda t: whole_number(t, 0, "{value} is negative"),
                   help="negative crops cut per photo (default 20)")
    add_cache_dir(g, default="auto")


def add_parser(sub: Any) -> None:
    """Register ``train`` on the subcommand action ``sub``."""
    p = sub.add_parser(
        "train",
        help="train a linear head on a features file",
        epilog=f"Any --{NESTED_PREFIX}PARAM VALUE sets a classifier parameter, e.g. "
        f"--{NESTED_PREFIX}max_iter 2000.",
    )
    p.add_argument("features", nargs="?", default=None,
                   help="a features file written by `gapsvm features` (not with --from-boxes)")
    p.add_argument("--classifier", type=classifier_arg, default="linearsvc",
                   help=f"{'|'.join(SHORT_NAMES)} or a dotted class name (default linearsvc)")
    p.add_argument("--C", type=float, default=None,
                   help=f"shorthand for --{NESTED_PREFIX}C (default: the classifier's own)")
    p.add_argument("--cv", type=folds_arg, default=5,
                   help="cross-validation folds: 0 to skip, else 2 or more")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the cross-validation fold shuffle (and of the negative "
                        "windows of --from-boxes)")
    add_weights(p, "auto", "the backbone weights: auto (default) takes them from the "
                "features file; give a weights file again when the features came from one")
    p.add_argument("--out", default="model.skops", help="the model file to write")
    _add_detection_flags(p)
    # The tokens the parser does not know are the classifier's (main passes them as `extra`).
    p.set_defaults(handler=cmd_train, takes_nested_flags=True, usage_error=p.error)


_MINING_FLAGS = ("mining_rounds", "mining_scales", "mining_per_image")
_BOX_FLAGS = ("images", "input_size", "negatives_per_image")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_inputs(args: argparse.Namespace) -> None:
    """Usage errors among the inputs: a features file or boxes, and the flags each takes."""
    if (args.features is None) == (args.from_boxes is None):
        args.usage_error("give either a features file (from `gapsvm features`) or "
                         "--from-boxes BOXES_CSV --images DIR" + (
                             ", not both" if args.features else ""))
    if args.from_boxes and not args.images:
        args.usage_error("--from-boxes needs --images DIR, the folder its file names are "
                         "relative to")
    if args.from_boxes and args.hard_negatives:
        args.usage_error("--hard-negatives mines against a features file's training vectors; "
                         "it does not combine with --from-boxes")
    for name in _BOX_FLAGS:
        if getattr(args, name) is not None and not args.from_boxes:
            args.usage_error(f"{_flag(name)} needs --from-boxes")
    for name in _MINING_FLAGS:
        if getattr(args, name) is not None and not (args.hard_negatives or args.from_boxes):
            args.usage_error(f"{_flag(name)} needs --hard-negatives DIR or --from-boxes CSV")
    if args.hard_negatives and args.mining_rounds == 0:
        args.usage_error("--mining-rounds 0 mines nothing: leave out --hard-negatives")
    if args.target is not None and not args.hard_negatives:
        args.usage_error("--target needs --hard-negatives DIR (--from-boxes mines against "
                         "the label of its CSV)")


def cmd_train(args: argparse.Namespace) -> int:
    """`gapsvm train`: a cross-validated linear head on a features file, saved as a model."""
    from gapsvm.workflows.training import nested_params, train_from_features

    _check_inputs(args)
    t0 = time.perf_counter()
    params = nested_params(args.extra, NESTED_PREFIX)
    if args.C is not None:
        params.setdefault("C", args.C)
    if args.from_boxes:
        model = _train_from_boxes(args, params)
    else:
        model = train_from_features(args.features, classifier=args.classifier, params=params,
                                    cv=args.cv, seed=args.seed, weights=args.weights)
        if args.hard_negatives:
            model = _mine(args, model)
    from gapsvm.estimator.persist import save_model

    save_model(model, args.out, require_safe_load=True)
    print(f"model -> {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _given(args: argparse.Namespace, **names: str) -> dict[str, Any]:
    """The keyword arguments whose flags were given: the function's own defaults hold for
    the others (their help texts quote them)."""
    return {kw: getattr(args, flag) for kw, flag in names.items()
            if getattr(args, flag) is not None}


def _train_from_boxes(args: argparse.Namespace, params: dict[str, Any]) -> Any:
    from gapsvm.workflows.detection import train_from_boxes
    from gapsvm.workflows.training import resolve_classifier

    return train_from_boxes(
        args.from_boxes, args.images, classifier=resolve_classifier(args.classifier, params),
        seed=args.seed, cache_dir=args.cache_dir,
        weights="imagenet" if args.weights == "auto" else args.weights,
        **_given(args, input_size="input_size", negatives_per_image="negatives_per_image",
                 mining_rounds="mining_rounds", mining_scales="mining_scales",
                 mining_per_image="mining_per_image"),
    )


def _mine(args: argparse.Namespace, model: Any) -> Any:
    from gapsvm.network.features_file import read_features_file
    from gapsvm.workflows.detection import mine_hard_negatives

    data = read_features_file(args.features)
    model.set_params(cache_dir=args.cache_dir)
    mined, _ = mine_hard_negatives(
        model, data["X"], data["y"], args.hard_negatives, target=args.target,
        **_given(args, rounds="mining_rounds", per_image="mining_per_image",
                 scales="mining_scales"),
    )
    return mined
