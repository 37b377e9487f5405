"""``backup.windows_server_backup``: Get-WBSummary, falling back to ``wbadmin get versions``.

``wbadmin`` output is localised, but its "Version identifier" is always ``MM/DD/YYYY-HH:MM``
in UTC, so versions are found by that value rather than by the (translated) labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import Field

from upkeeper import Check, CheckContext, Result, Status
from upkeeper.powershell import PowerShellError, parse_ps_date, run_powershell_json
from upkeeper_backup.common import Finding, FreshnessParams, combine, judge_age

_VERSION_RE = re.compile(r"\b(\d{2})/(\d{2})/(\d{4})-(\d{2}):(\d{2})\b")
_FIELD_RE = re.compile(r"^\s*([^:]{2,60}?)\s*:\s+(.*?)\s*$")
_TARGET_KEY_RE = re.compile(
    r"target|location|ziel|speicherort|cible|emplacement|destino|ubicaci|destinazione|"
    r"percorso|doel|locatie|lokalizacja|docel|umístění|cíl|местоположение|цель",
    re.IGNORECASE)
_RECOVER_KEY_RE = re.compile(r"recover|wiederherstell|récupér|recuper|herstel|odzysk|obnov|"
                             r"восстанов", re.IGNORECASE)


@dataclass
class WbVersion:
    """One backup version listed by ``wbadmin get versions``."""

    identifier: str
    time: datetime
    target: str = ""
    can_recover: str = ""
    fields: dict[str, str] = field(default_factory=dict)


def parse_wbadmin_versions(text: str) -> list[WbVersion]:
    """Versions from ``wbadmin get versions`` in any display language, oldest first."""
    versions = []
    for block in re.split(r"\r?\n\s*\r?\n", text.replace("\r\n", "\n")):
        m = _VERSION_RE.search(block)
        if not m:
            continue
        month, day, year, hour, minute = (int(g) for g in m.groups())
        try:
            when = datetime(year, month, day, hour, minute, tzinfo=timezone.utc)
        except ValueError:
            continue
        fields: dict[str, str] = {}
        for line in block.splitlines():
            fm = _FIELD_RE.match(line)
            if fm:
                fields[fm.group(1)] = fm.group(2)
        target = next((v for k, v in fields.items() if _TARGET_KEY_RE.search(k)), "")
        recover = next((v for k, v in fields.items() if _RECOVER_KEY_RE.search(k)), "")
        versions.append(WbVersion(m.group(0), when, target, recover, fields))
    return sorted(versions, key=lambda v: v.time)


def wbadmin_message(text: str) -> str:
    """The meaningful line of wbadmin output without versions (e.g. "no backups")."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    body = [ln for ln in lines if not ln.lower().startswith(("wbadmin", "(c)", "copyright"))]
    return body[-1][:200] if body else "no output"


_SUMMARY_SCRIPT = """\
if (-not (Get-Command Get-WBSummary -ErrorAction SilentlyContinue)) {
  Import-Module WindowsServerBackup -ErrorAction Stop
}
$s = Get-WBSummary
function U($t) { if ($t -and $t.Year -gt 1900) { $t.ToUniversalTime().ToString('o') } }
[pscustomobject]@{
  LastSuccessfulBackupTime = U $s.LastSuccessfulBackupTime
  LastBackupTime = U $s.LastBackupTime
  NextBackupTime = U $s.NextBackupTime
  LastBackupResultHR = [int64]$s.LastBackupResultHR
  LastBackupResultDetailedHR = [int64]$s.LastBackupResultDetailedHR
  NumberOfVersions = [int]$s.NumberOfVersions
  LastBackupTarget = "$($s.LastBackupTarget)"
  DetailedMessage = "$($s.DetailedMessage)"
}
"""


class WsbParams(FreshnessParams):
    source: Literal["auto", "summary", "wbadmin"] = Field(
        "auto", description="Get-WBSummary (summary), wbadmin get versions, or summary "
                            "falling back to wbadmin (auto)")
    require_schedule: bool = Field(False, description="WARN when no backup is scheduled")


def _date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str) and value:
        return parse_ps_date(value)
    return None


def _hresult(value: Any) -> str:
    try:
        return f"0x{int(value) & 0xFFFFFFFF:08X}"
    except (TypeError, ValueError):
        return str(value)


def judge_summary(row: dict[str, Any], p: WsbParams, now: datetime) -> Result:
    """Verdict from one Get-WBSummary object."""
    last_ok = _date(row.get("LastSuccessfulBackupTime"))
    last = _date(row.get("LastBackupTime"))
    nxt = _date(row.get("NextBackupTime"))
    count = int(row.get("NumberOfVersions") or 0)
    metrics: dict[str, float] = {"snapshot_count": count}
    details = {"last_backup": last.isoformat() if last else None,
               "next_backup": nxt.isoformat() if nxt else None,
               "target": row.get("LastBackupTarget") or "", "source": "Get-WBSummary"}
    findings = []
    if last_ok is None:
        findings.append(Finding(Status.CRIT, "no successful Windows Server Backup recorded"))
    else:
        metrics["age_hours"] = round((now - last_ok).total_seconds() / 3600, 3)
        findings.append(judge_age(f"last successful backup ({last_ok:%Y-%m-%d %H:%M} UTC)",
                                  last_ok, now, p))
    hr = row.get("LastBackupResultHR")
    if hr not in (None, 0, "0"):
        when = f" at {last:%Y-%m-%d %H:%M} UTC" if last else ""
        msg = str(row.get("DetailedMessage") or "").strip().splitlines()
        reason = f": {msg[0][:200]}" if msg else ""
        findings.append(Finding(Status.CRIT, f"last backup{when} failed with "
                                             f"{_hresult(hr)}{reason}"))
    if p.require_schedule and nxt is None:
        findings.append(Finding(Status.WARN, "no backup is scheduled"))
    return combine(findings, metrics, details)


def judge_versions(versions: list[WbVersion], raw: str, p: WsbParams, now: datetime) -> Result:
    metrics: dict[str, float] = {"snapshot_count": len(versions)}
    if not versions:
        return Result(Status.CRIT, f"no Windows Server Backup versions: {wbadmin_message(raw)}",
                      metrics=metrics)
    latest = versions[-1]
    metrics["age_hours"] = round((now - latest.time).total_seconds() / 3600, 3)
    details = {"latest": latest.identifier, "target": latest.target,
               "can_recover": latest.can_recover, "source": "wbadmin get versions"}
    finding = judge_age(f"latest backup version {latest.identifier}", latest.time, now, p)
    finding.text += f" ({len(versions)} version{'s' if len(versions) != 1 else ''})"
    return combine([finding], metrics, details)


class WindowsServerBackupCheck(Check[WsbParams]):
    """Windows Server Backup: last successful backup age, last result, versions."""

    name = "backup.windows_server_backup"
    description = ("Windows Server Backup: age of the last successful backup (RPO) and the "
                   "last backup's result (Get-WBSummary, or wbadmin get versions)")
    Params = WsbParams
    platforms = ("windows",)

    def run(self, ctx: CheckContext[WsbParams]) -> Result:
        p = ctx.params
        problem = ""
        if p.source in ("auto", "summary"):
            try:
                rows = [r for r in run_powershell_json(ctx, _SUMMARY_SCRIPT)
                        if isinstance(r, dict)]
            except PowerShellError as exc:
                rows, problem = [], str(exc)
            if rows:
                return judge_summary(rows[0], p, ctx.now)
            if p.source == "summary":
                return Result(Status.UNKNOWN, f"Get-WBSummary failed: {problem or 'no output'}")
        res = ctx.run_powershell("wbadmin get versions 2>&1 | Out-String -Width 4096")
        versions = parse_wbadmin_versions(res.stdout)
        if not versions and ("not recognized" in res.stdout + res.stderr
                             or res.exit_code == 9009):
            return Result(Status.UNKNOWN, "wbadmin is not available (Windows Server Backup "
                                          "feature not installed?)")
        result = judge_versions(versions, res.stdout or res.stderr, p, ctx.now)
        if problem and isinstance(result.details, dict):
            result.details["summary_error"] = problem
        return result
