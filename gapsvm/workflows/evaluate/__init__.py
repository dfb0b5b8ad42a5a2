"""``gapsvm evaluate``: localisation and faithfulness of CAMs against boxes, with baselines.

:mod:`~gapsvm.workflows.evaluate.run` runs the model and scores every (image, label) pair,
:mod:`~gapsvm.workflows.evaluate.faithfulness` masks feature cells or pixels,
:mod:`~gapsvm.workflows.evaluate.table` holds the metric rows the summary and the printed
table read, and :mod:`~gapsvm.workflows.evaluate.detection` scores ``detect`` as a detector
(``--detect``).
"""

from gapsvm.core.boxes_csv import CSV_COLUMNS, Annotation, BoxesCSVError, read_boxes_csv
from gapsvm.core.overlay import evaluation_overlay
from gapsvm.core.sizes import parse_scales
from gapsvm.workflows.evaluate.detection import (
    DETECTION_METHODS,
    evaluate_detection,
    format_detection_table,
    scored_boxes,
)
from gapsvm.workflows.evaluate.run import METHODS, evaluate, write_report
from gapsvm.workflows.evaluate.table import format_table

__all__ = [
    "CSV_COLUMNS",
    "DETECTION_METHODS",
    "METHODS",
    "Annotation",
    "BoxesCSVError",
    "evaluate",
    "evaluate_detection",
    "evaluation_overlay",
    "format_detection_table",
    "format_table",
    "parse_scales",
    "read_boxes_csv",
    "scored_boxes",
    "write_report",
]
