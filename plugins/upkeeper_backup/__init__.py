"""Built-in plugin: backup verification (restic, borg, backup files, Windows Server Backup)."""

from __future__ import annotations

from typing import Any

from upkeeper import hookimpl
from upkeeper_backup.restic import ResticCheck


@hookimpl
def upkeeper_register_checks() -> list[type[Any]]:
    return [ResticCheck]
