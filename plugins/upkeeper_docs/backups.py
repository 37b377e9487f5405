"""Backup jobs as the backup checks see them: the latest results of ``backup.*`` checks
on this host (same run or earlier, within a look-back), plus jobs listed in params."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from upkeeper import CheckContext, Result
from upkeeper.powershell import parse_ps_date
from upkeeper_docs.facts import iso

#: check name -> tool, for the built-in backup checks.
BACKUP_CHECKS = {"backup.restic": "restic", "backup.borg": "borg", "backup.files": "files",
                 "backup.windows_server_backup": "windows_server_backup"}
#: Results per check looked at: one per repository the host checks.
_PER_CHECK = 50


def _latest_time(details: dict[str, Any]) -> str | None:
    for key in ("latest_time", "newest_time", "last_backup"):
        value = details.get(key)
        if isinstance(value, str) and value:
            when = parse_ps_date(value)
            return iso(when) if when else None
    return None


def _repository(check: str, details: dict[str, Any]) -> str | None:
    repo = details.get("repository") or details.get("target")
    if isinstance(repo, str) and repo:
        return repo
    newest = details.get("newest")
    if check == "backup.files" and isinstance(newest, str) and newest:
        return newest.replace("\\", "/").rsplit("/", 1)[0] or "/"
    if check == "backup.windows_server_backup":
        return "Windows Server Backup"
    return None


def from_results(results: list[Result], check: str, since: datetime) -> list[dict[str, Any]]:
    """One job per repository: the newest result about it (results come newest first)."""
    jobs: dict[str, dict[str, Any]] = {}
    for res in results:
        if res.started < since or not isinstance(res.details, dict):
            continue
        repo = _repository(check, res.details)
        if repo is None or repo in jobs:
            continue
        jobs[repo] = {"tool": BACKUP_CHECKS.get(check, check), "repository": repo,
                      "last_snapshot": _latest_time(res.details)}
    return list(jobs.values())


def collect(ctx: CheckContext[Any], listed: list[dict[str, str]],
            look_back: timedelta) -> tuple[list[dict[str, Any]], str]:
    """Jobs and a description of where they came from."""
    since = ctx.now - look_back
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for check in BACKUP_CHECKS:
        for job in from_results(ctx.history.last_results(_PER_CHECK, check=check), check,
                                since):
            items.setdefault((job["tool"], job["repository"]), job)
    for job in listed:
        key = (job["tool"], job["repository"])
        items.setdefault(key, {"tool": job["tool"], "repository": job["repository"],
                               "last_snapshot": None})
    source = (f"latest results of {', '.join(BACKUP_CHECKS)} on this host "
              f"(within {look_back.days or 1}d), and params backups")
    return [items[k] for k in sorted(items)], source
