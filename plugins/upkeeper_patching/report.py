"""The patching section of the client report: patch compliance per host."""

from __future__ import annotations

from upkeeper import ReportSection

SECTION = ReportSection(
    key="patching",
    title="Patch compliance",
    prefixes=("patching.",),
    metrics=("pending_total", "pending_security", "reboot_required", "days_since_patch"),
    formats={"reboot_required": "yes_no", "days_since_patch": "days"},
    order=10,
)
