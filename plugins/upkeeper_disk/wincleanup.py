"""The Windows side of ``disk.cleanup``: old files in the temp folders (the system's and
each user's), and the component store (``DISM /StartComponentCleanup``).

Temp files are listed by walking the folders without entering reparse points (junctions,
directory symlinks) and deleted by exact path, each checked again at deletion: still a
plain old file, and no folder between it and its temp folder a reparse point. The
component store's reclaimable size is an estimate (DISM's "Cache and Temporary Data"
plus "Backups and Disabled Features").
"""

from __future__ import annotations

import re
from typing import Any

from upkeeper import FixContext, FixRefused, Plan
from upkeeper.measures import format_size
from upkeeper.powershell import ps_quote, run_powershell_json

_ROOTS = r"""
$roots = @(Join-Path $env:SystemRoot 'Temp')
$users = Join-Path $env:SystemDrive 'Users'
$rp = [IO.FileAttributes]::ReparsePoint
$found = @(Get-ChildItem -LiteralPath $users -Directory -Force -ErrorAction SilentlyContinue)
foreach ($u in $found) {
  if (-not ($u.Attributes -band $rp)) {
    $roots += (Join-Path $u.FullName 'AppData\Local\Temp')
  }
}
"""

LIST_TEMP = _ROOTS + r"""
$cut = (Get-Date).ToUniversalTime().AddSeconds(-{seconds})
$stack = New-Object System.Collections.Stack
foreach ($r in $roots) {
  $i = Get-Item -LiteralPath $r -Force -ErrorAction SilentlyContinue
  if ($i -and $i.PSIsContainer -and -not ($i.Attributes -band $rp)) { $stack.Push($i) }
}
[pscustomobject]@{ SystemDrive = $env:SystemDrive; Roots = $roots }
while ($stack.Count -gt 0) {
  $d = $stack.Pop()
  foreach ($e in @(Get-ChildItem -LiteralPath $d.FullName -Force -ErrorAction SilentlyContinue)) {
    if ($e.Attributes -band $rp) { continue }
    if ($e.PSIsContainer) { $stack.Push($e); continue }
    if ($e.LastWriteTimeUtc -lt $cut) { [pscustomobject]@{ Path = $e.FullName; Bytes = $e.Length } }
  }
}
"""

DELETE_TEMP = _ROOTS + r"""
$cut = (Get-Date).ToUniversalTime().AddSeconds(-{seconds})
foreach ($p in @({paths})) {
  $i = Get-Item -LiteralPath $p -Force -ErrorAction SilentlyContinue
  if (-not $i -or $i.PSIsContainer -or ($i.Attributes -band $rp)) { continue }
  if ($i.LastWriteTimeUtc -ge $cut) { continue }
  $root = $roots | Where-Object {
    $p.StartsWith($_ + '\', [StringComparison]::OrdinalIgnoreCase) } | Select-Object -First 1
  if (-not $root) { continue }
  $safe = $true
  $dir = Split-Path -LiteralPath $p -Parent
  while ($dir.Length -ge $root.Length) {
    $di = Get-Item -LiteralPath $dir -Force -ErrorAction SilentlyContinue
    if (-not $di -or ($di.Attributes -band $rp)) { $safe = $false; break }
    $dir = Split-Path -LiteralPath $dir -Parent
  }
  if (-not $safe) { continue }
  $bytes = $i.Length
  Remove-Item -LiteralPath $p -Force -ErrorAction SilentlyContinue
  if (-not (Test-Path -LiteralPath $p)) { [pscustomobject]@{ Path = $p; Bytes = $bytes } }
}
"""

ANALYZE = "Dism.exe /Online /Cleanup-Image /AnalyzeComponentStore /English"
CLEANUP = ["Dism.exe", "/Online", "/Cleanup-Image", "/StartComponentCleanup"]
_SIZE = re.compile(r"^\s*(Cache and Temporary Data|Backups and Disabled Features)\s*:\s*"
                   r"([\d.,]+)\s*(bytes|KB|MB|GB|TB)\s*$", re.IGNORECASE | re.MULTILINE)
_POWER = {"bytes": 0, "kb": 1, "mb": 2, "gb": 3, "tb": 4}


def parse_analyze(text: str) -> tuple[bool, int]:
    """(cleanup recommended, reclaimable bytes estimate) from DISM's analysis."""
    recommended = bool(re.search(r"Component Store Cleanup Recommended\s*:\s*Yes", text,
                                 re.IGNORECASE))
    total = 0
    for m in _SIZE.finditer(text):
        number = float(m.group(2).replace(",", ""))
        total += int(number * 1024 ** _POWER[m.group(3).lower()])
    return recommended, total


def plan_windows(ctx: FixContext[Any], failing: list[str]) -> Plan | None:
    p = ctx.params
    seconds = int(p.older_than.total_seconds())
    changes: list[dict[str, Any]] = []
    commands: list[list[str]] = []
    drive = ""
    if p.windows_temp:
        rows = run_powershell_json(ctx, LIST_TEMP.replace("{seconds}", str(seconds)))
        head = rows[0] if rows and isinstance(rows[0], dict) else {}
        drive = str(head.get("SystemDrive") or "").upper()
        if drive in (m.upper() for m in failing):
            for row in rows[1:]:
                if isinstance(row, dict) and isinstance(row.get("Bytes"), int):
                    changes.append({"delete": str(row["Path"]), "bytes": row["Bytes"]})
                    commands.append(["Remove-Item", "-LiteralPath", str(row["Path"]),
                                     "-Force"])
    if p.component_store:
        res = ctx.run_powershell(ANALYZE)
        if not res.ok:
            raise FixRefused(f"DISM could not analyse the component store: "
                             f"{res.stderr.strip()[:200]}")
        recommended, estimate = parse_analyze(res.stdout)
        if recommended and estimate:
            changes.append({"component_store": "StartComponentCleanup", "bytes": estimate,
                            "estimate": True})
            commands.append(CLEANUP)
    if not changes:
        return None
    total = sum(int(c["bytes"]) for c in changes)
    files = sum(1 for c in changes if "delete" in c)
    return Plan(f"free {format_size(total)} on {', '.join(failing)} ({files} old temp "
                f"file{'s' if files != 1 else ''}"
                + (", component store" if CLEANUP in commands else "") + ")",
                changes, commands, f"{', '.join(failing)} below the limits",
                {"mounts": failing, "bytes": total, "windows": True})


def apply_windows(ctx: FixContext[Any], plan: Plan) -> str:
    seconds = int(ctx.params.older_than.total_seconds())
    paths = [c["delete"] for c in plan.changes if "delete" in c]
    freed = 0
    for start in range(0, len(paths), 200):
        batch = ",".join(ps_quote(x) for x in paths[start:start + 200])
        rows = run_powershell_json(ctx, DELETE_TEMP.replace("{seconds}", str(seconds))
                                   .replace("{paths}", batch))
        freed += sum(int(r.get("Bytes") or 0) for r in rows if isinstance(r, dict))
    if CLEANUP in plan.commands:
        ctx.run_powershell(" ".join(CLEANUP)).check_ok("DISM /StartComponentCleanup")
    return f"deleted temp files of {format_size(freed)}" + (
        " and cleaned the component store" if CLEANUP in plan.commands else "")
