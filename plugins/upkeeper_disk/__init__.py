"""upkeeper built-in plugin: disk usage and inodes with days-to-full forecasts, SMART health,
and the ``disk.cleanup`` fix.

The checks are registered by reference: their modules are imported only when a playbook
uses them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from upkeeper import CheckRef, ReportSection, hookimpl
from upkeeper_disk.report import SECTION

if TYPE_CHECKING:
    from upkeeper_disk.smart import DiskSmart
    from upkeeper_disk.usage import DiskUsage

UPKEEPER_API = "1.2"

__all__ = ["DiskSmart", "DiskUsage", "upkeeper_register_checks", "upkeeper_register_fixes",
           "upkeeper_register_report_sections"]


def __getattr__(name: str) -> Any:
    if name == "DiskUsage":
        from upkeeper_disk.usage import DiskUsage

        return DiskUsage
    if name == "DiskSmart":
        from upkeeper_disk.smart import DiskSmart

        return DiskSmart
    raise AttributeError(name)


@hookimpl
def upkeeper_register_checks() -> list[CheckRef]:
    return [CheckRef("disk.usage", "upkeeper_disk.usage:DiskUsage"),
            CheckRef("disk.smart", "upkeeper_disk.smart:DiskSmart")]


@hookimpl
def upkeeper_register_report_sections() -> list[ReportSection]:
    return [SECTION]


@hookimpl
def upkeeper_register_fixes() -> list[Any]:
    from upkeeper_disk.cleanup import DiskCleanup

    return [DiskCleanup]
