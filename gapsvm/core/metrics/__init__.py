"""Localisation and faithfulness metrics for class activation maps, and baseline maps.

Everything here is a pure function of arrays (NumPy and OpenCV, plus
:mod:`gapsvm.core.boxes`): no model is called. Metrics that need model scores (Average Drop,
deletion / insertion) take scores computed elsewhere; for gapsvm's linear head on
global-average-pooled features those are cheap, since a masked image's score is a linear
function of its pooled feature vector.

* :mod:`~gapsvm.core.metrics.localisation`: pointing game, energy in box, IoU and CorLoc,
  box matching with recall and precision.
* :mod:`~gapsvm.core.metrics.sweep`: the threshold sweep of weakly-supervised localisation:
  top-1 localisation and MaxBoxAccV2.
* :mod:`~gapsvm.core.metrics.faithfulness`: Average Drop, Increase in Confidence, deletion
  and insertion orders and curves, their AUC.
* :mod:`~gapsvm.core.metrics.detection`: detection over images (PASCAL VOC matching): average
  precision, the precision-recall curve, recall at false positives per image, and what kind
  the false positives are (background, localisation, duplicate).
* :mod:`~gapsvm.core.metrics.baselines`: the centre, uniform, random and Gaussian maps and the
  :data:`~gapsvm.core.metrics.baselines.BASELINES` registry.

Conventions
-----------
* Boxes use the convention of :mod:`gapsvm.core.boxes`: integer
  ``(x_min, y_min, x_max, y_max)`` with **exclusive** maxima, i.e. the pixels
  ``array[y_min:y_max, x_min:x_max]``.
* A map ``cam`` is a finite 2-D array at image resolution: pixel ``(row, col)`` of the map is
  pixel ``(row, col)`` of the image that the ground-truth boxes refer to.
* Shares and rates (:func:`energy_in_box`, :func:`corloc`, :func:`box_recall_precision`, ...)
  are fractions in [0, 1]. Only :func:`average_drop` and :func:`increase_in_confidence` are
  percentages, because that is how Chattopadhay et al. define them.
* Images without an object of the class should not be scored by the localisation metrics;
  that is the caller's decision. Given no ground-truth box the functions still return the
  mathematically natural value (no hit, no energy, IoU 0) rather than raising.
"""

from gapsvm.core.metrics.baselines import (
    BASELINES,
    BaselineInput,
    MethodMaps,
    center_box,
    center_map,
    method_maps,
    pool_to_grid,
    random_map,
    uniform_map,
)
from gapsvm.core.metrics.detection import (
    FALSE_POSITIVE_KINDS,
    average_precision,
    best_recall,
    detection_summary,
    false_positive_kinds,
    match_detections,
    precision_recall_curve,
    recall_at_fppi,
)
from gapsvm.core.metrics.faithfulness import (
    PixelSchedule,
    auc,
    average_drop,
    deletion_insertion_orders,
    increase_in_confidence,
    linear_gap_curves,
    linear_gap_scores,
    scores_to_probabilities,
)
from gapsvm.core.metrics.localisation import (
    POINTING_GAME_REFERENCE_SIDE,
    POINTING_GAME_TOLERANCE_PX,
    best_iou,
    box_area_share,
    box_recall_precision,
    corloc,
    energy_in_box,
    match_boxes,
    pointing_game,
    scaled_tolerance,
)
from gapsvm.core.metrics.sweep import (
    MAXBOXACC_IOUS,
    MAXBOXACC_THRESHOLDS,
    MaxBoxAcc,
    box_ious,
    iou_curve,
    max_box_accuracy,
    minmax_normalize,
    threshold_boxes,
    top1_localisation,
)

__all__ = [
    "BASELINES",
    "FALSE_POSITIVE_KINDS",
    "MAXBOXACC_IOUS",
    "MAXBOXACC_THRESHOLDS",
    "POINTING_GAME_REFERENCE_SIDE",
    "POINTING_GAME_TOLERANCE_PX",
    "BaselineInput",
    "MaxBoxAcc",
    "MethodMaps",
    "PixelSchedule",
    "auc",
    "average_drop",
    "average_precision",
    "best_iou",
    "best_recall",
    "box_area_share",
    "box_ious",
    "box_recall_precision",
    "center_box",
    "center_map",
    "corloc",
    "deletion_insertion_orders",
    "detection_summary",
    "energy_in_box",
    "false_positive_kinds",
    "increase_in_confidence",
    "iou_curve",
    "linear_gap_curves",
    "linear_gap_scores",
    "match_boxes",
    "match_detections",
    "max_box_accuracy",
    "method_maps",
    "minmax_normalize",
    "pointing_game",
    "pool_to_grid",
    "precision_recall_curve",
    "random_map",
    "recall_at_fppi",
    "scaled_tolerance",
    "scores_to_probabilities",
    "threshold_boxes",
    "top1_localisation",
    "uniform_map",
]
