"""Windows Update through the Windows Update Agent COM API, reboot flags and hotfixes.

One PowerShell round trip returns a single object; the parsers accept what Windows
PowerShell 5.1 and PowerShell 7 make of it (lone objects for one-element lists,
``/Date(ms)/`` or ISO dates, KB numbers with or without the ``KB`` prefix, categories
as a list or one comma-joined string).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from upkeeper.powershell import as_list, parse_ps_date, ps_quote
from upkeeper_patching.model import PatchState, Update
from upkeeper_patching.runs import PatchRun, newest

#: Common Windows Update Agent HRESULTs, for a readable UNKNOWN reason.
WU_ERRORS = {
    0x8024401C: "the WSUS server did not answer in time (WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT)",
    0x8024402C: "the update server name cannot be resolved (WU_E_PT_WINHTTP_NAME_NOT_RESOLVED)",
    0x8024401B: "the proxy requires authentication (WU_E_PT_HTTP_STATUS_PROXY_AUTH_REQ)",
    0x80244022: "the update server is unavailable (HTTP 503)",
    0x8024402F: "an external cab file failed to process (WU_E_PT_ECP_SUCCEEDED_WITH_ERRORS)",
    0x80072EE2: "the update server timed out (ERROR_WINHTTP_TIMEOUT)",
    0x80072EFD: "cannot connect to the update server (ERROR_WINHTTP_CANNOT_CONNECT)",
    0x80072EE7: "the update server name cannot be resolved (ERROR_WINHTTP_NAME_NOT_RESOLVED)",
    0x8024002E: "Windows Update access is disabled by policy (WU_E_WU_DISABLED)",
    0x80070422: "the Windows Update service is disabled",
    0x8024001E: "the Windows Update service is shutting down (WU_E_SERVICE_STOP)",
    0x80240438: "the update server cannot be reached (WU_E_PT_ENDPOINT_UNREACHABLE)",
    0x80070005: "access denied: Windows Update installs need an elevated session",
}

_SEARCH = "IsInstalled=0 and IsHidden=0"

STATUS_SCRIPT = r"""
$r = [ordered]@{ Service = $null; WsusServer = $null; Updates = @(); Error = $null;
  HResult = $null; RebootCbs = $false; RebootWu = $false; PendingRename = $false;
  LastHotfix = $null; LastInstalled = $null; History = @(); HistoryError = $null }
try { $r.Service = [string](Get-CimInstance Win32_Service -Filter "Name='wuauserv'").StartMode }
catch { $r.Service = 'Unknown' }
$pol = Get-ItemProperty 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate' `
  -ErrorAction SilentlyContinue
if ($pol -and $pol.WUServer) { $r.WsusServer = [string]$pol.WUServer }
if ($r.Service -ne 'Disabled') {
  try {
    $searcher = (New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher()
    $found = $searcher.Search('__SEARCH__')
    $r.Updates = @(foreach ($u in $found.Updates) {
      [pscustomobject]@{
        KB = @($u.KBArticleIDs | ForEach-Object { 'KB' + $_ })
        Title = $u.Title
        MsrcSeverity = $u.MsrcSeverity
        Categories = @($u.Categories | ForEach-Object { $_.Name })
        UpdateID = $u.Identity.UpdateID
        RebootRequired = $u.RebootRequired
        IsDownloaded = $u.IsDownloaded
        SizeMB = [math]::Round($u.MaxDownloadSize / 1MB, 1)
      }
    })
  } catch {
    # COM errors arrive wrapped in a MethodInvocationException: report the inner HRESULT.
    $e = $_.Exception
    if ($e.InnerException) { $e = $e.InnerException }
    $r.Error = $e.Message
    $r.HResult = $e.HResult
  }
}
try {
  # Installs, newest first, without Defender's several-a-day definition updates that
  # would otherwise fill the window. WUA keeps these dates in UTC.
  $hs = (New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher()
  $n = [math]::Min($hs.GetTotalHistoryCount(), 1000)
  $all = @(if ($n -gt 0) { foreach ($h in $hs.QueryHistory(0, $n)) {
    if ($h.Operation -ne 1) { continue }
    $cats = @($h.Categories | ForEach-Object { $_.Name })
    if ($cats -contains 'Definition Updates') { continue }
    [pscustomobject]@{ Date = $h.Date.ToString('s') + 'Z'; Result = [int]$h.ResultCode
      Title = $h.Title; Categories = $cats }
  } })
  $r.History = @($all | Select-Object -First 100)
} catch { $r.HistoryError = $_.Exception.Message }
$cv = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion'
$r.RebootCbs = Test-Path "$cv\Component Based Servicing\RebootPending"
$r.RebootWu = Test-Path "$cv\WindowsUpdate\Auto Update\RebootRequired"
$sm = Get-ItemProperty 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' `
  -Name PendingFileRenameOperations -ErrorAction SilentlyContinue
$r.PendingRename = [bool]($sm -and $sm.PendingFileRenameOperations)
try {
  $hf = Get-HotFix -ErrorAction Stop | Where-Object { $_.InstalledOn } |
    Sort-Object InstalledOn -Descending | Select-Object -First 1
  if ($hf) {
    $r.LastHotfix = $hf.HotFixID
    $r.LastInstalled = $hf.InstalledOn.ToUniversalTime().ToString('o')
  }
} catch { $r.LastHotfix = $null }
[pscustomobject]$r
""".replace("__SEARCH__", _SEARCH)


def _kbs(value: Any) -> list[str]:
    out = []
    for item in as_list(value):
        for part in re.split(r"[,\s]+", str(item)):
            digits = part.strip().upper().removeprefix("KB")
            if digits.isdigit():
                out.append(f"KB{digits}")
    return out


def _categories(value: Any) -> list[str]:
    out: list[str] = []
    for item in as_list(value):
        if isinstance(item, dict):
            item = item.get("Name", "")
        out.extend(p.strip() for p in str(item).split(",") if p.strip())
    return out


def parse_windows_update(item: dict[str, Any]) -> Update:
    """One update object from the searcher script (or a similar export) -> :class:`Update`."""
    kbs = _kbs(item.get("KB", item.get("KBArticleIDs")))
    cats = _categories(item.get("Categories"))
    severity = str(item.get("MsrcSeverity") or "").strip()
    title = str(item.get("Title") or "").strip()
    security = severity != "" or any(c.lower() == "security updates" for c in cats)
    kind = next((c for c in cats if c.lower().endswith(("updates", "rollups", "packs",
                                                         "drivers", "upgrades"))), "")
    return Update(
        name=kbs[0] if kbs else title or str(item.get("UpdateID", "")),
        advisory=",".join(kbs), title=title, severity=severity, security=security,
        kind="windows", classification=kind,
    )


def parse_windows_updates(value: Any) -> list[Update]:
    """A list (or PowerShell 5.1 lone object, or null) of update objects."""
    return [parse_windows_update(i) for i in as_list(value) if isinstance(i, dict)]


def parse_hotfix_date(value: Any) -> datetime | None:
    """``InstalledOn`` as ``/Date(ms)/``, ISO text, a datetime, or a ``{value, DateTime}``
    wrapper (PowerShell 5.1 serialising a DateTime with extra notes)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, dict):
        value = value.get("value") or value.get("DateTime")
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value.strip():
        return parse_ps_date(value)
    return None


def newest_hotfix(value: Any) -> tuple[str, datetime] | None:
    """The newest ``Get-HotFix`` entry (list or lone object) by ``InstalledOn``."""
    best: tuple[str, datetime] | None = None
    for item in as_list(value):
        if not isinstance(item, dict):
            continue
        when = parse_hotfix_date(item.get("InstalledOn"))
        if when is not None and (best is None or when > best[1]):
            best = (str(item.get("HotFixID", "")), when)
    return best


_SECURITY_TITLE_RE = re.compile(
    r"\bSecurity (?:Update|Monthly Quality Rollup|Only Quality Update)\b"
    r"|\bCumulative Update for (?:Windows|Microsoft server operating system)", re.I)
_DEFINITION_RE = re.compile(r"Security Intelligence Update|Definition Update", re.I)


def is_security_install(item: dict[str, Any]) -> bool:
    """A Windows Update history entry installing a security update (not a definition)."""
    cats = [c.lower() for c in _categories(item.get("Categories"))]
    title = str(item.get("Title") or "")
    if "definition updates" in cats or _DEFINITION_RE.search(title):
        return False
    if cats:
        return "security updates" in cats
    # History entries of some installs carry no categories: go by the title.
    return bool(_SECURITY_TITLE_RE.search(title))


def parse_update_history(value: Any) -> PatchRun | None:
    """The newest successful installation of a security update in the WUA history
    (``QueryHistory`` entries: ``Date``, ``Result`` code, ``Title``, ``Categories``)."""
    runs: list[PatchRun | None] = []
    for item in as_list(value):
        if not isinstance(item, dict) or not is_security_install(item):
            continue
        try:
            result = int(item.get("Result", item.get("ResultCode", 0)) or 0)
        except (TypeError, ValueError):
            continue
        when = parse_hotfix_date(item.get("Date"))
        if result != 2 or when is None:  # 2: orcSucceeded
            continue
        title = str(item.get("Title") or "")
        kbs = _kbs(re.findall(r"KB\d+", title))
        runs.append(PatchRun(when, f"Windows Update {kbs[0]}" if kbs else "Windows Update"))
    return newest(runs)


def wu_error_reason(message: str | None, hresult: Any, wsus: str | None) -> str:
    """A readable reason for a failed search, naming WSUS when one is configured."""
    code: int | None = None
    m = re.search(r"0x([0-9A-Fa-f]{8})", message or "")
    if m:
        code = int(m.group(1), 16)
    elif isinstance(hresult, (int, float)):
        code = int(hresult) & 0xFFFFFFFF
    elif isinstance(hresult, str) and hresult.strip():
        try:
            code = int(hresult.strip(), 0) & 0xFFFFFFFF
        except ValueError:
            code = None
    reason = WU_ERRORS.get(code or 0) or (message or "unknown error").strip().splitlines()[0]
    hexcode = f" (0x{code:08X})" if code is not None else ""
    where = f" [WSUS {wsus}]" if wsus else ""
    return f"Windows Update search failed: {reason}{hexcode}{where}"


def state_from_json(rows: list[Any]) -> PatchState:
    """Build the patch state from what :data:`STATUS_SCRIPT` printed."""
    state = PatchState(manager="windows-update")
    data = next((r for r in rows if isinstance(r, dict)), None)
    if data is None:
        state.error = f"unexpected output from the Windows Update script: {rows!r:.200}"
        return state
    wsus = str(data.get("WsusServer") or "") or None
    if wsus:
        state.extra["wsus_server"] = wsus
    service = str(data.get("Service") or "")
    if service.lower() == "disabled":
        state.error = "the Windows Update service (wuauserv) is disabled"
    elif data.get("Error"):
        state.error = wu_error_reason(str(data["Error"]), data.get("HResult"), wsus)
    state.updates = parse_windows_updates(data.get("Updates"))
    reasons = [label for key, label in (("RebootCbs", "CBS RebootPending"),
                                        ("RebootWu", "WindowsUpdate RebootRequired"),
                                        ("PendingRename", "PendingFileRenameOperations"))
               if data.get(key)]
    state.reboot_required = bool(reasons)
    state.reboot_reasons = reasons
    state.last_patch_run = parse_update_history(data.get("History"))
    if data.get("HistoryError"):
        state.notes.append(f"Windows Update history unreadable: {str(data['HistoryError'])[:200]}")
    # Any hotfix, security or not: shown, not taken as the last patch.
    when = parse_hotfix_date(data.get("LastInstalled"))
    if when is not None:
        state.extra["last_hotfix"] = {"id": data.get("LastHotfix"), "installed": when.isoformat()}
    return state


def apply_script(scope: str, exclude_kbs: Sequence[str], check_mode: bool,
                 timeout_s: int) -> str:
    """Search, then (unless ``check_mode``) download and install as SYSTEM.

    The WUA installer refuses remote sessions (E_ACCESSDENIED over WinRM), so the install
    runs in a one-off scheduled task as SYSTEM that writes its result to a JSON file.
    """
    excluded = ", ".join(ps_quote(k.upper()) for k in exclude_kbs) or "''"
    security = "$true" if scope == "security" else "$false"
    body = _APPLY_BODY.replace("__SEARCH__", _SEARCH)
    return (
        f"$securityOnly = {security}\n$exclude = @({excluded})\n"
        f"$checkMode = {'$true' if check_mode else '$false'}\n$timeout = {int(timeout_s)}\n"
        + body
    )


_APPLY_BODY = r"""
$dir = Join-Path $env:ProgramData 'upkeeper'
New-Item -ItemType Directory -Force -Path $dir | Out-Null
$id = [guid]::NewGuid().ToString('N')
$worker = Join-Path $dir "patch-$id.ps1"
$out = Join-Path $dir "patch-$id.json"
$code = @'
param($securityOnly, $exclude, $checkMode, $out)
$ErrorActionPreference = 'Stop'
$res = [ordered]@{ Selected = @(); Installed = @(); ResultCode = $null
  RebootRequired = $false; Error = $null }
try {
  $session = New-Object -ComObject Microsoft.Update.Session
  $found = $session.CreateUpdateSearcher().Search('__SEARCH__')
  $coll = New-Object -ComObject Microsoft.Update.UpdateColl
  foreach ($u in $found.Updates) {
    $kbs = @($u.KBArticleIDs | ForEach-Object { 'KB' + $_ })
    $cats = @($u.Categories | ForEach-Object { $_.Name })
    $isSecurity = $u.MsrcSeverity -or ($cats -contains 'Security Updates')
    if ($securityOnly -and -not $isSecurity) { continue }
    if (@($kbs | Where-Object { $exclude -contains $_ }).Count -gt 0) { continue }
    if ($u.InstallationBehavior.CanRequestUserInput) { continue }
    if (-not $u.EulaAccepted) { $u.AcceptEula() }
    $coll.Add($u) | Out-Null
    $res.Selected += [pscustomobject]@{ KB = $kbs; Title = $u.Title
      MsrcSeverity = $u.MsrcSeverity; Categories = $cats }
  }
  if (-not $checkMode -and $coll.Count -gt 0) {
    $dl = $session.CreateUpdateDownloader(); $dl.Updates = $coll; $dl.Download() | Out-Null
    $inst = $session.CreateUpdateInstaller(); $inst.Updates = $coll
    $r = $inst.Install()
    $res.ResultCode = [int]$r.ResultCode
    $res.RebootRequired = [bool]$r.RebootRequired
    for ($i = 0; $i -lt $coll.Count; $i++) {
      $u = $coll.Item($i)
      $one = $r.GetUpdateResult($i)
      $res.Installed += [pscustomobject]@{ KB = @($u.KBArticleIDs | ForEach-Object { 'KB' + $_ })
        Title = $u.Title; ResultCode = [int]$one.ResultCode; HResult = $one.HResult }
    }
  }
} catch { $res.Error = $_.Exception.Message }
[pscustomobject]$res | ConvertTo-Json -Depth 5 | Set-Content -Encoding UTF8 -Path "$out.tmp"
Move-Item -Force -Path "$out.tmp" -Destination $out
'@
if ($checkMode) {
  # In-process: no script file to run, so no execution policy to meet.
  & ([scriptblock]::Create($code)) $securityOnly $exclude $true $out
} else {
  Set-Content -Encoding UTF8 -Path $worker -Value $code
  $excl = ($exclude | ForEach-Object { "'" + ($_ -replace "'", "''") + "'" }) -join ','
  $call = "& '$worker' `$$securityOnly @($excl) `$false '$out'"
  $arg = "-NoProfile -ExecutionPolicy Bypass -Command `"$call`""
  $task = "upkeeper-patch-$id"
  $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $arg
  $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount `
    -RunLevel Highest
  Register-ScheduledTask -TaskName $task -Action $action -Principal $principal -Force | Out-Null
  Start-ScheduledTask -TaskName $task
  $deadline = (Get-Date).AddSeconds($timeout)
  while (-not (Test-Path $out) -and (Get-Date) -lt $deadline) { Start-Sleep -Seconds 5 }
  Start-Sleep -Seconds 1
  Unregister-ScheduledTask -TaskName $task -Confirm:$false -ErrorAction SilentlyContinue
}
if (Test-Path $out) { Get-Content -Raw -Path $out | ConvertFrom-Json } else {
  [pscustomobject]@{ Error = "no result within $timeout s" }
}
Remove-Item -Force -ErrorAction SilentlyContinue $worker, $out
""".replace("__SEARCH__", _SEARCH)

#: ``IInstallationResult.ResultCode`` values.
RESULT_CODES = {0: "not started", 1: "in progress", 2: "succeeded",
                3: "succeeded with errors", 4: "failed", 5: "aborted"}
