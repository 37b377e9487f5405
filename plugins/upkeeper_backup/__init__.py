"""Built-in plugin: backup verification (restic, borg, backup files, Windows Server Backup)
and the fixes for stale locks (``backup.restic.unlock``, ``backup.borg.break_lock``).

The checks are registered by reference: their modules are imported only when a playbook
uses them; the fix module when a playbook has fixes.
"""

from __future__ import annotations

from typing import Any

from upkeeper import CheckRef, ReportSection, hookimpl
from upkeeper_backup.report import SECTION

UPKEEPER_API = "1.2"


@hookimpl
def upkeeper_register_checks() -> list[CheckRef]:
    return [CheckRef("backup.restic", "upkeeper_backup.restic:ResticCheck"),
            CheckRef("backup.borg", "upkeeper_backup.borg:BorgCheck"),
            CheckRef("backup.files", "upkeeper_backup.files:FilesCheck"),
            CheckRef("backup.windows_server_backup",
                     "upkeeper_backup.wbadmin:WindowsServerBackupCheck")]


@hookimpl
def upkeeper_register_report_sections() -> list[ReportSection]:
    return [SECTION]


@hookimpl
def upkeeper_register_fixes() -> list[Any]:
    from upkeeper_backup.borgfix import BorgBreakLock
    from upkeeper_backup.lockfix import ResticUnlock

    return [ResticUnlock, BorgBreakLock]
