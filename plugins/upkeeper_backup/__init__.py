"""Built-in plugin: backup verification (restic, borg, backup files, Windows Server Backup)."""

from __future__ import annotations

from typing import Any

from upkeeper import ReportSection, hookimpl
from upkeeper_backup.borg import BorgCheck
from upkeeper_backup.files import FilesCheck
from upkeeper_backup.report import SECTION
from upkeeper_backup.restic import ResticCheck
from upkeeper_backup.wbadmin import WindowsServerBackupCheck


@hookimpl
def upkeeper_register_checks() -> list[type[Any]]:
    return [ResticCheck, BorgCheck, FilesCheck, WindowsServerBackupCheck]


@hookimpl
def upkeeper_register_report_sections() -> list[ReportSection]:
    return [SECTION]
