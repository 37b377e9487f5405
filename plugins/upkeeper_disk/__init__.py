"""upkeeper built-in plugin: disk usage and inodes with days-to-full forecasts, SMART health."""

from __future__ import annotations

from typing import Any

from upkeeper import ReportSection, hookimpl
from upkeeper_disk.report import SECTION
from upkeeper_disk.smart import DiskSmart
from upkeeper_disk.usage import DiskUsage

__all__ = ["DiskSmart", "DiskUsage", "upkeeper_register_checks",
           "upkeeper_register_report_sections"]


@hookimpl
def upkeeper_register_checks() -> list[type[Any]]:
    return [DiskUsage, DiskSmart]


@hookimpl
def upkeeper_register_report_sections() -> list[ReportSection]:
    return [SECTION]
