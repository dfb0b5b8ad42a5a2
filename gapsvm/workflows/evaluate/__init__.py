"""``gapsvm evaluate``: localisation and faithfulness of CAMs against boxes, with baselines."""

from gapsvm.core.boxes_csv import CSV_COLUMNS, Annotation, BoxesCSVError, read_boxes_csv
from gapsvm.core.overlay import evaluation_overlay
from gapsvm.core.sizes import parse_scales
from gapsvm.workflows.evaluate.run import METHODS, evaluate, format_table, write_report

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
