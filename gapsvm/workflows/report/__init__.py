"""``gapsvm report``: one self-contained HTML page of CAMs for a folder of images."""

from gapsvm.workflows.report.build import Report, ReportEntry, build_report, read_boxes_csv

__all__ = ["Report", "ReportEntry", "build_report", "read_boxes_csv"]
