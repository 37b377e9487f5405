"""The disks section of the client report: space, forecasts and SMART per device."""

from __future__ import annotations

from upkeeper import ReportSection

SECTION = ReportSection(
    key="disk",
    title="Disks",
    prefixes=("disk.",),
    # Per device or mount: "/var:used_pct", "sda:temperature_c".
    metrics=("*:used_pct", "*:days_to_full", "*:temperature_c", "*:percentage_used",
             "*:ata_5", "*:nvme_media_errors", "*:scsi_grown_defects"),
    formats={"*:used_pct": "percent", "*:days_to_full": "days",
             "*:temperature_c": "celsius", "*:percentage_used": "percent",
             "*:used_bytes": "bytes"},
    order=30,
)
