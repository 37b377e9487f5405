"""Built-in plugin: patching (``patching.status`` and the ``patching.apply`` action)."""

from __future__ import annotations

from typing import Any

from upkeeper import ReportSection, hookimpl
from upkeeper_patching.apply import PatchApply
from upkeeper_patching.checks import PatchStatus
from upkeeper_patching.report import SECTION


@hookimpl
def upkeeper_register_checks() -> list[type[Any]]:
    return [PatchStatus, PatchApply]


@hookimpl
def upkeeper_register_report_sections() -> list[ReportSection]:
    return [SECTION]
