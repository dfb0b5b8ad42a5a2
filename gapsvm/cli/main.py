"""The ``gapsvm`` command line: the parser and the commands.

Subcommands follow the user's path: ``weights install`` once, then ``features`` (images ->
cached GAP vectors in one file), ``train`` (a linear head, cross-validated, saved as
``.skops``), ``predict`` and ``cam`` (overlay PNGs), ``report`` (one HTML page of CAMs),
``evaluate`` (CAMs against boxes). ``demo`` runs that path on images bundled with
scikit-image.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gapsvm.workflows.training import (
    CLASSIFIERS,
    _literal,
    resolve_classifier,
)

__all__ = [
    "main",
]


class CLIError(Exception):
    """An error to report on one line, without a traceback."""


def _nested_flags(extra: Sequence[str], prefix: str = "classifier__") -> dict[str, Any]:
    out: dict[str, Any] = {}
    it = iter(extra)
    for tok in it:
        if not tok.startswith("--" + prefix):
            raise CLIError(f"unrecognized argument {tok!r}")
        key, eq, value = tok[2 + len(prefix) :].partition("=")
        if not eq:
            try:
                value = next(it)
            except StopIteration:
                raise CLIError(f"{tok} needs a value") from None
        out[key] = _literal(value)
    return out


def _verbose(args: argparse.Namespace) -> int:
    return 0 if getattr(args, "quiet", False) else 1


def _safe_rel(path: str, root: str) -> str:
    """A relative output name that cannot climb out of the output folder."""
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    parts = [p for p in Path(rel).parts if p not in ("..", ".", "", os.sep)]
    return "/".join(parts) or os.path.basename(path)


def _inside(out: Path, rel: str) -> Path:
    """``out / rel``, refused if it would resolve outside ``out`` (defence in depth)."""
    dest = out / rel
    root = out.resolve()
    if not dest.resolve().is_relative_to(root):
        raise CLIError(f"refusing to write {dest}: outside the output folder {out}")
    return dest


def _expand_inputs(items: Sequence[str], problems: list | None = None) -> list[tuple[str, str]]:
    """Files and folders from the command line -> (path, name relative to its folder);
    folder entries that cannot be used (loops, unsupported formats) go to ``problems``."""
    from gapsvm.core.scan import list_images

    out: list[tuple[str, str]] = []
    for item in items:
        if os.path.isdir(item):
            found = list_images(item, problems)
            if not found:
                raise CLIError(f"no images found in {item!r}")
            out.extend((p, _safe_rel(p, item)) for p in found)
        else:
            out.append((item, os.path.basename(item)))
    # Two inputs named a/x.png and b/x.png must not overwrite each other's outputs.
    seen: dict[str, int] = {}
    unique = []
    for path, rel in out:
        n = seen.get(rel, 0)
        seen[rel] = n + 1
        if n:
            stem, ext = os.path.splitext(rel)
            rel = f"{stem}-{n + 1}{ext}"
        unique.append((path, rel))
    return unique


# -- weights -----------------------------------------------------------------------------
def cmd_weights(args: argparse.Namespace) -> int:
    """`gapsvm weights install|info|verify`: the backbone weights."""
    from gapsvm.network.backbone.registry import get_spec
    from gapsvm.network.backbone.weights import (
        install_offline_weights,
        installed_weights_path,
        keras_cached_weights_path,
    )

    spec = get_spec(args.backbone)
    if args.action == "install":
        install_offline_weights(spec, force=args.force, log=print)
        return 0
    print(f"backbone            {spec.name} (cut at {spec.layer}, stride {spec.stride})")
    print(f"ImageNet sha256     {spec.imagenet_sha256}")
    for label, p in (
        ("Keras cache", keras_cached_weights_path(spec)),
        ("gapsvm install", installed_weights_path(spec)),
    ):
        print(f"{label:<19} {p} ({'present' if p.is_file() else 'absent'})")
    if args.action == "verify":
        from gapsvm.network.backbone.build import build_model

        _, ident = build_model(spec, "imagenet")
        print(f"verified            {ident.name} {ident.sha256}")
    return 0


# -- features ----------------------------------------------------------------------------
def _size_arg(text: str) -> Any:
    from gapsvm.core.sizes import parse_input_size

    if text == "fit":  # argparse runs string defaults through `type` too
        return "fit"
    try:
        return parse_input_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _weights_arg(text: str) -> Any:
    return None if text.lower() in ("none", "random") else text


def _extract_on_dask(fz: Any, paths: list[str], args: argparse.Namespace) -> tuple[Any, float]:
    """``--scheduler`` / ``--workers``: the same extraction, sharded over a Dask cluster."""
    from gapsvm.network.distributed import dask_client, extract_distributed, warm_up_workers

    try:
        with dask_client(args.scheduler, args.workers) as client:
            warm_up_workers(fz, client)  # builds each worker's backbone: the rate is compute only
            t0 = time.perf_counter()
            res = extract_distributed(fz, paths, client, chunk_size=args.chunk_size,
                                      on_error="skip")
            return res, time.perf_counter() - t0
    except (ImportError, ConnectionError) as exc:
        raise CLIError(str(exc)) from None


def cmd_features(args: argparse.Namespace) -> int:
    """`gapsvm features`: a folder of images to one features file (cached per image)."""
    from gapsvm.core.scan import ScanProblem, load_directory
    from gapsvm.network.features_file import write_features_file
    from gapsvm.network.featurizer import GapFeaturizer

    problems: list[ScanProblem] = []
    paths, labels, class_names = load_directory(args.data_dir, problems)
    fz = GapFeaturizer(
        backbone=args.backbone, weights=args.weights, input_size=args.input_size,
        precision=args.precision, batch_size=args.batch_size, cache_dir=args.cache_dir,
        cache_maps=not args.no_maps, verbose=_verbose(args),
    )
    if args.scheduler is not None or args.workers is not None:
        res, elapsed = _extract_on_dask(fz, paths, args)
        meta = res.metadata
    else:
        fz.fit()
        t0 = time.perf_counter()
        res = fz.extract(paths, on_error="skip")
        elapsed = time.perf_counter() - t0
        meta = fz.metadata()
    ok = res.ok
    root = os.path.abspath(args.data_dir)
    errors = [{"path": _safe_rel(p.path, root), "reason": p.reason} for p in problems]
    errors += [{"path": _safe_rel(e.path, root), "reason": e.reason} for e in res.errors]
    rel = [_safe_rel(p, root) for p in paths]
    payload = {
        "X": res.gap if ok.all() else res.gap[ok],  # no copy of 2 KB per image when all read
        "y": None if labels is None else labels[ok],
        "class_names": class_names,
        "paths": [r for r, k in zip(rel, ok, strict=True) if k],
        "image_hw": [hw for hw in res.image_hw if hw is not None],
        "data_dir": root,
        "errors": errors,
        "meta": meta,
    }
    if ok.any():
        write_features_file(args.out, payload)
    n_ok = int(ok.sum())
    rate = res.n_computed / elapsed if res.n_computed and elapsed > 0 else float("nan")
    print(
        f"{n_ok} images -> {args.out} ({res.n_computed} computed, {n_ok - res.n_computed} "
        f"from cache, {elapsed:.1f} s" + (f", {rate:.1f} img/s computed" if res.n_computed else "")
        + ")"
    )
    if class_names:
        counts = {c: int(np.sum(payload["y"] == c)) for c in class_names}
        print("classes: " + ", ".join(f"{c} ({n})" for c, n in counts.items()))
    if args.errors:
        # Written even when empty, so a script can tell "no errors" from "did not run".
        with open(args.errors, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["path", "reason"])
            w.writeheader()
            w.writerows(errors)
    if errors:
        print(f"{len(errors)} file(s) skipped:", file=sys.stderr)
        for e in errors:
            print(f"  {e['path']}: {e['reason']}", file=sys.stderr)
    if not ok.any():
        raise CLIError(f"no usable image in {args.data_dir!r}; nothing written")
    return 1 if errors and args.strict else 0


# -- train -------------------------------------------------------------------------------
def _model_from_meta(meta: dict[str, Any], weights: Any, classifier: Any) -> Any:
    from gapsvm.core.sizes import parse_input_size
    from gapsvm.estimator.classifier import GapClassifier

    if weights == "auto":
        name = meta["weights"]["name"]
        if name == "imagenet":
            weights = "imagenet"
        elif name.startswith("random("):
            weights = None
        else:
            raise CLIError(
                f"the features were computed with the weights file {name!r}; pass it with "
                "--weights PATH"
            )
    return GapClassifier(
        classifier, backbone=meta["backbone"], weights=weights,
        input_size=parse_input_size(meta["input_size"]), precision=meta["precision"],
    )


def cmd_train(args: argparse.Namespace, extra: Sequence[str]) -> int:
    """`gapsvm train`: a cross-validated linear head on a features file, saved as a model."""
    from sklearn.metrics import classification_report
    from sklearn.model_selection import StratifiedKFold

    from gapsvm.core.head import GapHead
    from gapsvm.estimator.persist import save_model
    from gapsvm.network.features_file import read_features_file

    t0 = time.perf_counter()
    data = read_features_file(args.features)
    X, y = data["X"], data["y"]
    if y is None:
        raise CLIError(
            f"{args.features} has no labels (its images were in a flat folder); train needs "
            "a folder with one sub-folder per class"
        )
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise CLIError(f"{args.features} has a single class {classes.tolist()}: need two or more")
    params = _nested_flags(extra)
    if args.C is not None:
        params.setdefault("C", args.C)
    clf = resolve_classifier(args.classifier, params)
    print(f"{len(y)} images, classes {dict(zip(classes.tolist(), counts.tolist(), strict=True))}")
    print(f"features: {data['meta']['backbone']} {data['meta']['layer']}, input "
          f"{data['meta']['input_size']}, weights {data['meta']['weights']['name']}")
    print(f"classifier: {clf!r}")
    cv_info: dict[str, Any] = {}
    folds = min(args.cv, int(counts.min()))
    if args.cv >= 2 and folds >= 2:
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=args.seed)
        scores = []
        pred = np.empty_like(y)
        for tr, te in skf.split(X, y):
            head = GapHead(clf).fit(X[tr], y[tr])
            pred[te] = head.predict(X[te])
            scores.append(float(np.mean(pred[te] == y[te])))
        scores_arr = np.asarray(scores)
        print(f"{folds}-fold accuracy: {scores_arr.mean():.4f} +- {scores_arr.std():.4f} "
              f"(folds: {', '.join(f'{s:.3f}' for s in scores)})")
        print(classification_report(y, pred, digits=3))
        cv_info = {"cv_folds": folds, "cv_accuracy_mean": float(scores_arr.mean()),
                   "cv_accuracy_std": float(scores_arr.std()), "cv_scores": scores}
    elif args.cv >= 2:
        print(f"cross-validation skipped: the smallest class has {counts.min()} image(s)")
    model = _model_from_meta(data["meta"], args.weights, clf)
    model.fit_features(X, y, data["meta"])
    model.training_info_ = {
        "n_images": len(y), "features_file": os.path.basename(args.features),
        "classifier": repr(clf), **cv_info,
    }
    save_model(model, args.out)
    print(f"model -> {args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


# -- predict / cam -----------------------------------------------------------------------
def _load(args: argparse.Namespace) -> Any:
    from gapsvm.estimator.persist import load_model

    model = load_model(args.model, trusted=args.trusted)
    if getattr(args, "input_size", "fit") != "fit":
        model.set_params(input_size=args.input_size)
    if getattr(args, "precision", None):
        model.set_params(precision=args.precision)
    if getattr(args, "cache_dir", None) is not None:
        model.set_params(cache_dir=args.cache_dir)
    model.set_params(verbose=0)
    return model


def _chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def cmd_predict(args: argparse.Namespace) -> int:
    """`gapsvm predict`: label and score per image."""
    model = _load(args)
    scan: list = []
    items = _expand_inputs(args.images, scan)
    for problem in scan:
        print(f"{problem.path}: {problem.reason}", file=sys.stderr)
    rows = []
    n_bad = len(scan)
    for sl in _chunks(len(items), 256):
        chunk = items[sl]
        res = model.extract([p for p, _ in chunk], on_error="skip")
        ok = res.ok
        pred = np.empty(len(chunk), dtype=object)
        score = np.full(len(chunk), np.nan)
        if ok.any():
            pred[ok] = model.head_.predict(res.gap[ok])
            if hasattr(model.head_, "decision_function"):
                d = np.asarray(model.head_.decision_function(res.gap[ok]))
                score[ok] = np.abs(d) if d.ndim == 1 else d.max(axis=1)
        for e in res.errors:
            print(f"{e.path}: {e.reason}", file=sys.stderr)
            n_bad += 1
        for (p, _), k, lab, s in zip(chunk, ok, pred, score, strict=True):
            if k:
                rows.append((p, lab, s))
    if args.csv:
        w = csv.writer(sys.stdout)
        w.writerow(["path", "label", "score"])
        w.writerows((p, lab, f"{s:.6g}") for p, lab, s in rows)
    else:
        for p, lab, s in rows:
            print(f"{lab}\t{s:+.4f}\t{p}")
    return 1 if n_bad and (args.strict or not rows) else 0


def cmd_cam(args: argparse.Namespace) -> int:
    """`gapsvm cam`: one class-activation overlay PNG per image."""
    from gapsvm.core.decode import ImageReadError, read_image
    from gapsvm.core.output import safe_label, write_png
    from gapsvm.core.overlay import draw_overlay
    from gapsvm.estimator.targets import resolve_target
    from gapsvm.utils.progress import progress_bar

    model = _load(args)
    model.head_.cam_weights()  # a non-linear head fails here, before any image is read
    scan: list = []
    items = _expand_inputs(args.images, scan)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = resolve_target(model.classes_, args.target)
    for problem in scan:
        print(f"{problem.path}: {problem.reason}", file=sys.stderr)
    n_bad = len(scan)
    written = 0
    with progress_bar(len(items), 1 if not args.quiet else 0, "cam") as bar:
        for sl in _chunks(len(items), max(args.batch_size, 32)):
            chunk = items[sl]
            info = model.explain([p for p, _ in chunk], target, on_error="skip")
            for e in info.errors:
                n_bad += 1
                print(f"{e.path}: {e.reason}", file=sys.stderr)
            for j, (path, rel) in enumerate(chunk):
                cam = info.cams[j]
                if cam is None:
                    continue
                try:
                    img = read_image(path)
                except ImageReadError as exc:  # changed or removed since its maps were made
                    n_bad += 1
                    print(f"{exc.path}: {exc.reason}", file=sys.stderr)
                    continue
                stem = str(Path(rel).with_suffix(""))
                label = safe_label(info.target_labels[j])
                dest = _inside(out, f"{stem}.cam-{label}.png")
                write_png(dest, draw_overlay(img, cam, alpha=args.alpha))
                if args.save_npy:
                    np.save(dest.with_suffix(".npy"), cam)
                written += 1
            bar.update(len(chunk))
    print(f"{written} overlay(s) -> {out}")
    return 1 if n_bad and (args.strict or not written) else 0


# -- evaluate ----------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    """`gapsvm evaluate`: localisation and faithfulness metrics against boxes, with baselines."""
    from gapsvm.core.boxes_csv import read_boxes_csv
    from gapsvm.core.sizes import parse_scales
    from gapsvm.utils.progress import progress_bar
    from gapsvm.workflows.evaluate.run import evaluate, format_table, write_report

    scales = parse_scales(args.scales if args.scales is not None else [args.scale])
    model = _load(args)
    model.head_.cam_weights()  # a non-linear head fails here, before any image is read
    anns = read_boxes_csv(args.boxes_csv, args.images, classes=model.classes_,
                          inclusive_max=args.inclusive_max)
    with progress_bar(len({a.path for a in anns}), _verbose(args), "evaluate") as bar:
        report = evaluate(
            model, anns, scales=scales, mode=args.mode, threshold=args.threshold,
            faithfulness=args.faithfulness, n_steps=args.steps, image_steps=args.image_steps,
            seed=args.seed, out_dir=args.out, alpha=args.alpha, progress=bar.update,
        )
    report["inputs"] = {"model": os.path.abspath(args.model),
                        "boxes_csv": os.path.abspath(args.boxes_csv),
                        "images": os.path.abspath(args.images)}
    write_report(report, Path(args.out) / "evaluation.json")
    print(format_table(report))
    print(f"{report['counts']['pairs']} overlay(s) and evaluation.json -> {args.out}")
    return 0


# -- report / demo -------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    """`gapsvm report`: one self-contained HTML page of CAMs, model card and confusion matrix."""
    from gapsvm.workflows.report.build import build_report

    notes = list(args.note or ())
    if args.notes:
        with open(args.notes, encoding="utf-8") as fh:
            notes += [p.strip() for p in fh.read().split("\n\n") if p.strip()]
    model = _load(args)
    rep = build_report(
        model, args.images_dir, args.out, target=args.target, input_size=model.input_size,
        boxes=args.boxes, alpha=args.alpha, max_per_class=args.max_per_class or None,
        title=args.title, notes=notes, verbose=_verbose(args),
    )
    for line in rep.findings:
        print(line)
    for path, reason in rep.errors:
        print(f"{path}: {reason}", file=sys.stderr)
    print(f"report -> {rep.path}")
    return 1 if rep.errors and (args.strict or not rep.entries) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`gapsvm demo`: write the bundled demo data and run the user's path on it."""
    from gapsvm.cli.demo import run_demo
    from gapsvm.workflows.demo import DemoError

    try:
        run_demo(args.out, n_per_class=args.n_per_class, weights=args.weights,
                 cache_dir=args.cache_dir, train_size=args.train_size,
                 photo_size=args.photo_size, quiet=args.quiet)
    except DemoError as exc:
        raise CLIError(str(exc)) from None
    return 0


# -- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from gapsvm._version import __version__

    p = argparse.ArgumentParser(
        prog="gapsvm",
        description="Where does an image classifier look? VGG16 GAP features, a linear "
        "scikit-learn head, class activation maps.",
    )
    p.add_argument("--version", action="version", version=f"gapsvm {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    w = sub.add_parser("weights", help="install or check the backbone weights")
    w.add_argument("action", choices=["install", "info", "verify"])
    w.add_argument("--backbone", default="vgg16")
    w.add_argument("--force", action="store_true", help="reinstall even if verified")

    def featurizer_flags(q: argparse.ArgumentParser, fit_defaults: bool) -> None:
        if fit_defaults:
            q.add_argument("--input-size", type=_size_arg, default="fit",
                           help="override the model's input size: HxW, a scale like x2, "
                                "or native")
            q.add_argument("--precision", choices=["float32", "bfloat16"], default=None,
                           help="override the model's precision (bfloat16: the fast choice "
                                "on CPUs with AMX or AVX512-BF16)")
        else:
            q.add_argument("--input-size", type=_size_arg, default=(224, 224),
                           help="HxW (e.g. 128x64), a scale like x2, or native "
                                "(default 224x224)")
            q.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                           help="float32 (default) or bfloat16: about 6x faster on CPUs with "
                                "AMX, 2x with AVX512-BF16, same accuracy")
            q.add_argument("--weights", type=_weights_arg, default="imagenet",
                           help="imagenet (default), a Keras weights file, or none")
            q.add_argument("--backbone", default="vgg16")
        q.add_argument("--cache-dir", default=None if fit_defaults else "auto",
                       help="feature cache folder (default $GAPSVM_HOME/features)")
        q.add_argument("--batch-size", type=int, default=16)
        q.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        q.add_argument("--strict", action="store_true",
                       help="exit non-zero if any file could not be read")

    f = sub.add_parser("features", help="compute GAP features of a folder of images")
    f.add_argument("data_dir", help="folder with one sub-folder per class, or a flat folder")
    f.add_argument("--out", default="features.joblib")
    featurizer_flags(f, fit_defaults=False)
    f.add_argument("--errors", metavar="CSV", help="write unreadable files and reasons here")
    f.add_argument("--no-maps", action="store_true",
                   help="cache only the vectors, not the maps CAMs need")
    dist = f.add_argument_group("distributed extraction (needs gapsvm[dask]; see the README)")
    where = dist.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on this Dask scheduler (tcp://host:8786); --cache-dir must be "
                            "on storage every worker sees")
    where.add_argument("--workers", type=int, metavar="N",
                       help="start a local Dask cluster of N worker processes for this run "
                            "(TensorFlow threads: cores / N each)")
    dist.add_argument("--chunk-size", type=int, default=64,
                      help="images per Dask task (default 64)")

    t = sub.add_parser(
        "train",
        help="train a linear head on a features file",
        epilog="Any --classifier__PARAM VALUE sets a classifier parameter, e.g. "
        "--classifier__max_iter 2000.",
    )
    t.add_argument("features")
    t.add_argument("--classifier", default="linearsvc",
                   help=f"{'|'.join(CLASSIFIERS)} or a dotted class name (default linearsvc)")
    t.add_argument("--C", type=float, default=None, help="shorthand for --classifier__C")
    t.add_argument("--cv", type=int, default=5, help="cross-validation folds (0 to skip)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--weights", type=_weights_arg, default="auto",
                   help="weights file, when the features came from one")
    t.add_argument("--out", default="model.skops")

    for name, helptext in (("predict", "label and score per image"),
                           ("cam", "write class activation map overlays as PNG")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("model")
        q.add_argument("images", nargs="+", help="image files and/or folders")
        q.add_argument("--trusted", action="store_true",
                       help="allow pickle-based model files (they can run code)")
        featurizer_flags(q, fit_defaults=True)
        if name == "predict":
            q.add_argument("--csv", action="store_true", help="CSV on standard output")
        else:
            q.add_argument("--target", default=None, help="class to explain (default: "
                           "each image's predicted class)")
            q.add_argument("--out", required=True, help="folder for the PNG overlays")
            q.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity")
            q.add_argument("--save-npy", action="store_true",
                           help="also save the raw feature-resolution maps (.npy)")

    r = sub.add_parser("report", help="write one HTML page: model card, confusion matrix, "
                       "CAM overlays of a folder")
    r.add_argument("model")
    r.add_argument("images_dir", help="folder with one sub-folder per class, or a flat folder")
    r.add_argument("--out", required=True, help="folder for index.html")
    r.add_argument("--trusted", action="store_true",
                   help="allow pickle-based model files (they can run code)")
    featurizer_flags(r, fit_defaults=True)
    r.add_argument("--target", default=None, help="class whose map is drawn for every image "
                   "(default: each image's predicted class)")
    r.add_argument("--boxes", metavar="CSV", default=None, help="ground-truth boxes "
                   "(filename,label,x_min,y_min,x_max,y_max; exclusive maxima) for a "
                   "localisation check")
    r.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity")
    r.add_argument("--max-per-class", type=int, default=200,
                   help="overlays shown per class, misclassified first (0: all)")
    r.add_argument("--title", default=None)
    r.add_argument("--note", action="append", help="a paragraph under the title (repeatable)")
    r.add_argument("--notes", metavar="FILE", default=None,
                   help="a text file of paragraphs (blank-line separated) shown under the title")

    d = sub.add_parser("demo", help="the whole path offline on images shipped with "
                       "scikit-image: features, train, cam, report")
    d.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    d.add_argument("--n-per-class", type=int, default=None,
                   help="train on fewer thumbnails per class (1-100, default 100)")
    d.add_argument("--weights", type=_weights_arg, default="imagenet",
                   help="imagenet (default), a Keras weights file, or none (random)")
    d.add_argument("--cache-dir", default=None, help="feature cache folder")
    d.add_argument("--train-size", default="112x112", help="--input-size of the thumbnails")
    d.add_argument("--photo-size", default="native", help="--input-size of the photos")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    e = sub.add_parser("evaluate", help="localisation and faithfulness of CAMs against "
                       "ground-truth boxes, beside centre / uniform / random baselines")
    e.add_argument("model")
    e.add_argument("boxes_csv", help="CSV with filename,label,x_min,y_min,x_max,y_max, one "
                   "row per box, pixels, exclusive x_max / y_max")
    e.add_argument("--images", required=True, help="folder the CSV's file names are in")
    e.add_argument("--out", required=True, help="folder for overlays/*.png and evaluation.json")
    how = e.add_mutually_exclusive_group()
    how.add_argument("--scale", type=float, default=1.0, help="resize the photos by this "
                     "factor before the network (default 1: their own size; small objects "
                     "need 2: one map cell per 16 network pixels)")
    how.add_argument("--scales", default=None, metavar="S1,S2", help="multi-scale CAM: the "
                     "mean of the upsampled CAMs at these scales, e.g. 1,2")
    e.add_argument("--mode", choices=["largest", "all"], default="largest",
                   help="boxes from the largest region only, or one per region")
    e.add_argument("--threshold", type=float, default=0.2,
                   help="box threshold, a fraction of the CAM's maximum (default 0.2)")
    e.add_argument("--faithfulness", choices=["features", "image", "none"], default="features",
                   help="mask feature-map cells (exact for the linear head, no network pass; "
                        "default), image pixels (a network pass per step), or skip")
    e.add_argument("--steps", type=int, default=32, help="deletion / insertion steps on "
                   "feature cells (default 32)")
    e.add_argument("--image-steps", type=int, default=8, help="deletion / insertion steps "
                   "with --faithfulness image (default 8)")
    e.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    e.add_argument("--inclusive-max", action="store_true", help="the CSV's x_max / y_max "
                   "are the last pixel inside the box (PASCAL VOC style): add one")
    e.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity")
    e.add_argument("--trusted", action="store_true",
                   help="allow pickle-based model files (they can run code)")
    e.add_argument("--cache-dir", default=None, help="feature cache folder")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off
    from gapsvm.core.cache import CacheWriteError
    from gapsvm.core.decode import ImageReadError
    from gapsvm.core.head import NotLinearError
    from gapsvm.estimator.persist import ModelLoadError
    from gapsvm.network.backbone.weights import WeightsError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if extra and args.command != "train":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "train":
            return cmd_train(args, extra)
        return {"weights": cmd_weights, "features": cmd_features, "predict": cmd_predict,
                "cam": cmd_cam, "report": cmd_report, "demo": cmd_demo,
                "evaluate": cmd_evaluate}[args.command](args)
    except (CLIError, ImageReadError, WeightsError, ModelLoadError, NotLinearError,
            CacheWriteError, OSError, ValueError) as exc:
        print(f"gapsvm {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished images are in the cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
