"""``disk.smart``: drive health from smartctl (Linux) or the Windows storage cmdlets."""

from __future__ import annotations

import fnmatch
import shlex
from typing import Any

from upkeeper import Check, CheckContext, Result, Status
from upkeeper.powershell import PowerShellError, run_powershell_json
from upkeeper_disk.smartdata import (
    ScanEntry,
    SmartParseError,
    parse_smartctl_json,
    parse_smartctl_scan,
    parse_windows_disks,
)
from upkeeper_disk.smarthealth import (
    DeviceReport,
    DeviceSpec,
    SmartParams,
    build_smart_result,
    judge_device,
    judge_windows_disk,
)

END_MARK = "@@upkeeper-smart-end"
#: smartctl lives in sbin, which is not on a normal user's PATH on Debian.
_PATH = "PATH=\"$PATH:/usr/sbin:/sbin:/usr/local/sbin\"; export PATH; LC_ALL=C; export LC_ALL; "
_NOT_FOUND = "upkeeper: smartctl not found"
_GUARD = f"command -v smartctl >/dev/null 2>&1 || {{ echo '{_NOT_FOUND}' >&2; exit 127; }}; "
SCAN_SCRIPT = _PATH + _GUARD + "smartctl --scan-open --json"

WINDOWS_SCRIPT = """
Get-PhysicalDisk | ForEach-Object {
  $c = $null
  try { $c = $_ | Get-StorageReliabilityCounter -ErrorAction Stop } catch { $c = $null }
  [pscustomobject]@{
    DeviceId = $_.DeviceId; FriendlyName = $_.FriendlyName; SerialNumber = $_.SerialNumber
    MediaType = [string]$_.MediaType; BusType = [string]$_.BusType
    HealthStatus = [string]$_.HealthStatus
    OperationalStatus = @($_.OperationalStatus | ForEach-Object { [string]$_ })
    Wear = $c.Wear; Temperature = $c.Temperature; TemperatureMax = $c.TemperatureMax
    ReadErrorsUncorrected = $c.ReadErrorsUncorrected
    WriteErrorsUncorrected = $c.WriteErrorsUncorrected; PowerOnHours = $c.PowerOnHours
  }
}
"""

_INSTALL = {"apt": "apt-get install smartmontools", "dnf": "dnf install smartmontools",
            "yum": "yum install smartmontools", "zypper": "zypper install smartmontools",
            "apk": "apk add smartmontools", "pacman": "pacman -S smartmontools"}


def device_script(devices: list[DeviceSpec], wake_standby: bool = False) -> str:
    """One round trip reading every disk, each JSON document followed by an end marker."""
    parts = [_PATH, _GUARD]
    for dev in devices:
        argv = ["smartctl", "-a", "--json=c"]
        if not wake_standby:
            argv += ["-n", "standby"]
        # Names come from params or from the scan's output: "--" keeps them operands.
        argv += [f"--device={dev.type or 'auto'}", "--", dev.name]
        # Compact JSON has no final newline: the marker goes on a line of its own.
        parts.append(f"{shlex.join(argv)}; rc=$?; echo; echo \"{END_MARK} $rc\"; ")
    return "".join(parts)


def split_device_output(text: str) -> list[str]:
    """The per-device chunks of :func:`device_script` output, in order."""
    chunks = []
    current: list[str] = []
    for line in text.splitlines():
        before, mark, _ = line.partition(END_MARK)
        current.append(before)
        if mark:
            chunks.append("\n".join(current))
            current = []
    return chunks


def _scan_error_report(entry: ScanEntry) -> DeviceReport:
    if "usb bridge" in entry.open_error.lower():
        # Many USB enclosures do not pass SMART through; that is not a fault of the disk.
        return DeviceReport(entry.name, Status.SKIPPED, [
            f"{entry.open_error}: no SMART through this USB enclosure (try devices with "
            "type sat)"])
    return DeviceReport(entry.name, Status.UNKNOWN, [f"open failed: {entry.open_error}"])


def _sudo_failure(stderr: str) -> str | None:
    for line in stderr.splitlines():
        low = line.lower()
        if low.startswith("sudo:") and ("password" in low or "sudoers" in low or "tty" in low):
            return line.strip()
    return None


class DiskSmart(Check[SmartParams]):
    """Drive health from SMART: failing status, bad sectors, wear, media errors, heat."""

    name = "disk.smart"
    description = "SMART drive health (smartctl 7+ on Linux, storage cmdlets on Windows)"
    Params = SmartParams
    platforms = ("linux", "windows")
    timeout = 120.0

    def run(self, ctx: CheckContext[SmartParams]) -> Result:
        previous: dict[str, dict[str, int]] = ctx.history.get_state("counters", {}) or {}
        if ctx.is_windows:
            result, current = self._windows(ctx, previous)
        else:
            result, current = self._linux(ctx, previous)
        if current:
            ctx.history.set_state("counters", {**previous, **current})
        return result

    def _windows(self, ctx: CheckContext[SmartParams],
                 previous: dict[str, dict[str, int]]) -> tuple[Result, dict[str, Any]]:
        try:
            rows = run_powershell_json(ctx, WINDOWS_SCRIPT)
        except PowerShellError as exc:
            err = f"{exc.result.stderr}\n{exc.result.stdout}"
            if "Get-PhysicalDisk" in err and ("not recognized" in err
                                              or "CommandNotFoundException" in err):
                return Result(Status.SKIPPED, "Get-PhysicalDisk needs Windows 8 / Server 2012 "
                                              "or later"), {}
            return Result(Status.UNKNOWN, f"reading physical disks failed: {exc}"), {}
        reports, current = [], {}
        for disk in parse_windows_disks(rows):
            if any(fnmatch.fnmatch(disk.name, g) for g in ctx.params.exclude_devices):
                continue
            key = disk.serial or disk.name
            reports.append(judge_windows_disk(disk, ctx.params, previous.get(key)))
            current[key] = {k: v for k, v in (
                ("read_uncorrected", disk.read_errors_uncorrected),
                ("write_uncorrected", disk.write_errors_uncorrected)) if v is not None}
        return build_smart_result(reports), current

    def _linux(self, ctx: CheckContext[SmartParams],
               previous: dict[str, dict[str, int]]) -> tuple[Result, dict[str, Any]]:
        p = ctx.params
        sudo = p.sudo if p.sudo is not None else not ctx.host.facts.get("is_root", False)
        if p.devices:
            devices = [d if isinstance(d, DeviceSpec) else DeviceSpec(name=d)
                       for d in p.devices]
            scan_errors: list[ScanEntry] = []
        else:
            res = ctx.run(SCAN_SCRIPT, sudo=sudo)
            problem = self._command_problem(ctx, res.exit_code, res.stdout, res.stderr)
            if problem is not None:
                return problem, {}
            try:
                scanned = parse_smartctl_scan(res.stdout)
            except SmartParseError as exc:
                return Result(Status.UNKNOWN, f"smartctl --scan-open: {exc}"), {}
            # smartctl's own names, not params: they go after "--", whatever they hold.
            devices = [DeviceSpec.model_construct(name=s.name, type=s.dev_type)
                       for s in scanned if not s.open_error]
            scan_errors = [s for s in scanned if s.open_error]
        devices = [d for d in devices
                   if not any(fnmatch.fnmatch(d.name, g) for g in p.exclude_devices)]
        reports = [_scan_error_report(s) for s in scan_errors
                   if not any(fnmatch.fnmatch(s.name, g) for g in p.exclude_devices)]
        if not devices and not reports:
            return Result(Status.SKIPPED, "smartctl found no SMART-capable disks (virtual "
                                          "disks such as virtio, VMware or Hyper-V have none)"
                          ), {}
        current: dict[str, Any] = {}
        if devices:
            res = ctx.run(device_script(devices, p.wake_standby), sudo=sudo)
            if res.timed_out:
                return Result(Status.UNKNOWN, "smartctl timed out"), {}
            problem = self._command_problem(ctx, res.exit_code, res.stdout, res.stderr)
            if problem is not None:
                return problem, {}
            chunks = split_device_output(res.stdout)
            chunks += [""] * (len(devices) - len(chunks))
            for spec, chunk in zip(devices, chunks[:len(devices)], strict=True):
                try:
                    dev = parse_smartctl_json(chunk)
                except SmartParseError as exc:
                    reports.append(DeviceReport(spec.name, Status.UNKNOWN, [str(exc)]))
                    continue
                dev.name = dev.name or spec.name
                reports.append(judge_device(dev, p, previous.get(dev.key)))
                if dev.counters():
                    current[dev.key] = dev.counters()
        return build_smart_result(reports), current

    def _command_problem(self, ctx: CheckContext[SmartParams], code: int, stdout: str,
                         stderr: str) -> Result | None:
        if _NOT_FOUND in stderr or code == 127:
            hint = _INSTALL.get(str(ctx.host.facts.get("pkg_mgr") or ""),
                                "install smartmontools 7 or later")
            return Result(Status.UNKNOWN, f"smartctl not found on the host: {hint}")
        sudo_err = _sudo_failure(stderr)
        if sudo_err is not None:
            return Result(Status.UNKNOWN, f"smartctl needs root and sudo failed ({sudo_err}); "
                                          "allow passwordless sudo for smartctl or connect "
                                          "as root")
        if "{" not in stdout:
            first = (stdout.strip() or stderr.strip()).splitlines()
            if "UNRECOGNIZED OPTION" in stdout or "unrecognized option" in stderr:
                return Result(Status.UNKNOWN, "smartctl is older than 7.0 (no --json); "
                                              "upgrade smartmontools")
            return Result(Status.UNKNOWN, f"smartctl failed (exit {code}): "
                                          f"{first[0] if first else 'no output'}")
        return None
