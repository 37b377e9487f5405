"""upkeeper built-in plugin: disk usage and inodes with days-to-full forecasts, SMART health."""

from __future__ import annotations

from typing import Any

from upkeeper import hookimpl
from upkeeper_disk.smart import DiskSmart
from upkeeper_disk.usage import DiskUsage

__all__ = ["DiskSmart", "DiskUsage", "upkeeper_register_checks"]


@hookimpl
def upkeeper_register_checks() -> list[type[Any]]:
    return [DiskUsage, DiskSmart]
