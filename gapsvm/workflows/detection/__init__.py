"""Training heads for detection: hard-negative mining, and box supervision.

:mod:`~gapsvm.workflows.detection.mining` is the bootstrapping of Dalal and Triggs: scan
images with the current head, add the windows it wrongly scores highest as negatives, refit,
repeat. :mod:`~gapsvm.workflows.detection.boxes` trains a head on crops cut from boxed photos
(and mines the photos' own box-free windows).
"""

from gapsvm.workflows.detection.boxes import (
    DEFAULT_NEGATIVES_PER_IMAGE,
    negative_windows,
    train_from_boxes,
)
from gapsvm.workflows.detection.mining import (
    DEFAULT_PER_IMAGE,
    DEFAULT_ROUNDS,
    MARGIN,
    MINING_SCALES,
    MiningReport,
    MiningRound,
    mine_hard_negatives,
)

__all__ = [
    "DEFAULT_NEGATIVES_PER_IMAGE",
    "DEFAULT_PER_IMAGE",
    "DEFAULT_ROUNDS",
    "MARGIN",
    "MINING_SCALES",
    "MiningReport",
    "MiningRound",
    "mine_hard_negatives",
    "negative_windows",
    "train_from_boxes",
]
