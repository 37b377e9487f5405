"""The backups section of the client report: freshness, size, integrity, restores."""

from __future__ import annotations

from upkeeper import ReportSection

SECTION = ReportSection(
    key="backup",
    title="Backups",
    prefixes=("backup.",),
    metrics=("age_hours", "snapshot_count", "total_size", "integrity_ok", "restore_ok"),
    formats={"age_hours": "hours", "total_size": "bytes", "integrity_ok": "yes_no",
             "restore_ok": "yes_no"},
    order=20,
)
