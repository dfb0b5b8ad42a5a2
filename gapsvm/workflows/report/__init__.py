"""``gapsvm report``: one self-contained HTML page of CAMs for a folder of images.

:mod:`~gapsvm.workflows.report.collect` runs the model over the folder (entries, confusion
matrix, findings); :mod:`~gapsvm.workflows.report.html` draws the overlays and writes the page
(:func:`build_report`). ``read_boxes_csv`` is the one strict boxes reader of
:mod:`gapsvm.core.boxes_csv`, re-exported for the old ``gapsvm.report.read_boxes_csv`` path.
"""

from gapsvm.core.boxes_csv import read_boxes_csv
from gapsvm.workflows.report.collect import Report, ReportEntry
from gapsvm.workflows.report.html import build_report

__all__ = ["Report", "ReportEntry", "build_report", "read_boxes_csv"]
