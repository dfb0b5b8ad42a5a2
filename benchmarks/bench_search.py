"""Row 4: ``GridSearchCV`` over heads costs one network pass per image.

``GapClassifier`` is an ordinary scikit-learn estimator, so ``GridSearchCV`` clones it and
fits it on every fold; the feature cache (keyed by image content) makes every fit after the
first a lookup. Measured: the network passes per image over the whole search (the backbone's
``images_run`` counter; target exactly 1) and the search's wall time against one plain
extraction of the same images into an empty cache (target <= 1.2x).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import common

NAME = "search"


def heads(n: int = 5) -> list[Any]:
    """``n`` linear heads for the grid, as ``gapsvm train`` builds them (its short names)."""
    from gapsvm.workflows.training import resolve_classifier

    out = [
        resolve_classifier("linearsvc"),
        resolve_classifier("linearsvc", {"C": 0.1}),
        resolve_classifier("logreg"),
        resolve_classifier("sgd", {"random_state": 0}),
        resolve_classifier("perceptron", {"random_state": 0}),
        resolve_classifier("ridge"),
    ]
    return out[:n]


def run(
    *,
    n_images: int | None = None,
    input_size: Any = (128, 64),
    precision: str = "float32",
    weights: Any = "imagenet",
    n_heads: int = 5,
    folds: int = 5,
    batch_size: int = 16,
    workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Time a ``GridSearchCV`` over ``n_heads`` heads x ``folds`` folds against one extraction.

    Parameters
    ----------
    n_images : int, optional
        Person crops to use (default: all 800; a balanced subset otherwise).
    input_size : (h, w), default=(128, 64)
    precision : {"float32", "bfloat16"}, default="float32"
    weights : {"imagenet"} or None
    n_heads : int, default=5
    folds : int, default=5
    batch_size : int, default=16
    workdir : path, optional
        Where the two caches go (default: a temporary folder).

    Returns
    -------
    dict
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from gapsvm import GapClassifier, GapFeaturizer
    from gapsvm.core.scan import load_directory
    from gapsvm.core.sizes import format_size
    from gapsvm.network.backbone.build import get_backbone

    paths, labels, _ = load_directory(common.shared_data_dir() / "persons" / "train")
    if n_images is not None and n_images < len(paths):
        rng = np.random.default_rng(0)
        idx = np.sort(np.concatenate([
            rng.choice(np.flatnonzero(labels == c), n_images // 2, replace=False)
            for c in np.unique(labels)
        ]))
        paths, labels = [paths[i] for i in idx], labels[idx]
    n = len(paths)
    bb = get_backbone("vgg16", weights, precision)
    bb(np.zeros((batch_size, *input_size, 3), np.uint8))  # compile before timing
    kw = {"weights": weights, "input_size": input_size, "precision": precision,
          "batch_size": batch_size, "verbose": 0}
    with contextlib.ExitStack() as stack:
        work = Path(workdir) if workdir else stack.enter_context(common.temp_dir())
        fz = GapFeaturizer(cache_dir=work / "one", **kw).fit()
        t_one, _ = common.time_call(lambda: fz.extract(paths))
        grid = GridSearchCV(
            GapClassifier(cache_dir=work / "search", **kw),
            {"classifier": heads(n_heads)},
            cv=StratifiedKFold(folds, shuffle=True, random_state=0),
        )
        before = bb.images_run
        t_search, _ = common.time_call(lambda: grid.fit(paths, labels))
        passes = (bb.images_run - before) / n
    fits = n_heads * folds + 1
    ratio = t_search / t_one
    rows = [
        common.row(
            "4. GridSearchCV: network passes per image", passes, equals=1.0, fmt=".2f",
            detail=f"{n_heads} heads x {folds} folds + refit = {fits} fits on {n} INRIA crops "
            f"at {format_size(input_size)}, {precision}",
        ),
        common.row(
            "4a. GridSearchCV wall time / one extraction", ratio, at_most=1.2, fmt=".2f",
            unit="x",
            detail=f"{t_search:.1f} s vs {t_one:.1f} s; best head "
            f"{type(grid.best_params_['classifier']).__name__} "
            f"({100 * grid.best_score_:.1f}% CV accuracy)",
        ),
    ]
    return {"name": NAME, "rows": rows, "passes_per_image": passes, "t_search": t_search,
            "t_one": t_one, "n_images": n, "best_score": float(grid.best_score_)}


def main() -> dict[str, Any]:
    """Run with the defaults and print the rows."""
    out = run()
    return common.print_rows(out)


if __name__ == "__main__":
    main()
