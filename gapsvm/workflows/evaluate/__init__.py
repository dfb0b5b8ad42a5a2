"""``gapsvm evaluate``: localisation and faithfulness of CAMs against boxes, with baselines.

:mod:`~gapsvm.workflows.evaluate.run` runs the model and scores every (image, label) pair,
:mod:`~gapsvm.workflows.evaluate.faithfulness` masks feature cells or pixels, and
:mod:`~gapsvm.workflows.evaluate.table` holds the metric rows the summary and the printed
table read.
"""

from gapsvm.core.boxes_csv import CSV_COLUMNS, Annotation, BoxesCSVError, read_boxes_csv
from gapsvm.core.overlay import evaluation_overlay
from gapsvm.core.sizes import parse_scales
from gapsvm.workflows.evaluate.run import METHODS, evaluate, write_report
from gapsvm.workflows.evaluate.table import format_table

__all__ = [
    "CSV_COLUMNS",
    "METHODS",
    "Annotation",
    "BoxesCSVError",
    "evaluate",
    "evaluation_overlay",
    "format_table",
    "parse_scales",
    "read_boxes_csv",
    "write_report",
]
