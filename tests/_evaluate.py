"""Shared by the ``gapsvm evaluate`` tests: a small model on a seeded random VGG16
(``weights=None``) and two synthetic photos with their boxes.

Import as ``from _evaluate import tiny_eval_model`` (pytest puts ``tests/`` on ``sys.path``);
each test module wraps it in its own module-scoped fixture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _helpers import write_rgb
from sklearn.linear_model import LogisticRegression

from gapsvm import GapClassifier
from gapsvm.core.boxes import Box
from gapsvm.core.boxes_csv import Annotation

#: The boxes CSV header ``gapsvm evaluate`` reads.
HEADER = "filename,label,x_min,y_min,x_max,y_max\n"


def sigmoid(x):
    """The two-class probability of a decision value, computed here independently."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def tiny_eval_model(d: Path) -> tuple[GapClassifier, list[Annotation], Path]:
    """Logistic regression on random-VGG16 features of 8 synthetic images; 2 test photos.

    Returns
    -------
    (model, annotations of the photos ``imgs/p0.png`` (class "b") and ``imgs/p1.png``
    (class "a"), the folder)
    """
    rng = np.random.default_rng(0)
    train = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(8)]
    for k in range(4, 8):  # class "b": a bright square somewhere
        y, x = rng.integers(0, 32, 2)
        train[k][y : y + 32, x : x + 32] = 255
    model = GapClassifier(LogisticRegression(max_iter=2000), weights=None, input_size=None,
                          cache_dir=d / "cache")
    model.fit(train, ["a"] * 4 + ["b"] * 4)
    photo = rng.integers(0, 120, (64, 96, 3), dtype=np.uint8)
    photo[16:48, 48:80] = 255
    write_rgb(d / "imgs" / "p0.png", photo)
    write_rgb(d / "imgs" / "p1.png", rng.integers(0, 256, (80, 64, 3), dtype=np.uint8))
    anns = [
        Annotation("p0.png", str(d / "imgs" / "p0.png"), (64, 96), "b", [Box(48, 16, 80, 48)]),
        Annotation("p1.png", str(d / "imgs" / "p1.png"), (80, 64), "a",
                   [Box(0, 0, 32, 40), Box(32, 40, 64, 80)]),
    ]
    return model, anns, d
