"""``disk.smart``: drive health from smartctl (Linux) or the Windows storage cmdlets."""

from __future__ import annotations

import fnmatch
import shlex
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from upkeeper import Check, CheckContext, Params, Result, Status
from upkeeper.powershell import PowerShellError, run_powershell_json
from upkeeper_disk.smartdata import (
    ATA_COUNTERS,
    NVME_CRITICAL_BITS,
    ScanEntry,
    SmartDevice,
    SmartParseError,
    WindowsDisk,
    parse_smartctl_json,
    parse_smartctl_scan,
    parse_windows_disks,
)

END_MARK = "@@upkeeper-smart-end"
#: smartctl lives in sbin, which is not on a normal user's PATH on Debian.
_PATH = "PATH=\"$PATH:/usr/sbin:/sbin:/usr/local/sbin\"; export PATH; LC_ALL=C; export LC_ALL; "
_NOT_FOUND = "upkeeper: smartctl not found"
SCAN_SCRIPT = (_PATH + "command -v smartctl >/dev/null 2>&1 || "
               f"{{ echo '{_NOT_FOUND}' >&2; exit 127; }}; smartctl --scan-open --json")

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
_CRIT_OPS = {"Predictive Failure", "Error", "Non-Recoverable Error", "Failed Media"}
_WARN_OPS = {"Degraded", "Stressed", "Lost Communication", "No Contact", "Transient Error",
             "Supporting Entity in Error", "Aborted"}


class DeviceSpec(BaseModel):
    """A disk to query instead of scanning, e.g. ``{name: /dev/bus/0, type: megaraid,0}``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    type: str = "auto"


class SmartParams(Params):
    devices: list[DeviceSpec | str] = Field(
        default_factory=list, description="Disks to query (default: smartctl --scan-open)")
    exclude_devices: list[str] = Field(default_factory=list,
                                       description="Device name globs to leave out")
    sudo: bool | None = Field(None, description="Run smartctl through sudo (default: "
                                                "when not connected as root)")
    warn_temp_c: int = Field(55, description="WARN at this HDD/SATA SSD temperature")
    crit_temp_c: int = Field(65, description="CRIT at this HDD/SATA SSD temperature")
    nvme_warn_temp_c: int = Field(70, description="WARN at this NVMe temperature")
    nvme_crit_temp_c: int = Field(80, description="CRIT at this NVMe temperature")
    wear_warn_pct: int = Field(90, ge=0, description="WARN when an SSD used this % of its life")
    warn_error_log: bool = Field(True, description="WARN when the ATA error log has entries")
    wake_standby: bool = Field(False, description="Spin up sleeping disks to read them")


@dataclass
class DeviceReport:
    name: str
    status: Status = Status.OK
    reasons: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, status: Status, reason: str) -> None:
        self.status = Status.worst([self.status, status])
        self.reasons.append(reason)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.name, "status": self.status.value, "reasons": self.reasons,
                **self.info}


def _grew(key: str, now: int, previous: dict[str, int]) -> int | None:
    before = previous.get(key)
    return before if before is not None and now > before else None


def _counter(rep: DeviceReport, key: str, value: int | None, what: str,
             previous: dict[str, int]) -> None:
    if not value:
        return
    before = _grew(key, value, previous)
    if before is not None:
        rep.add(Status.CRIT, f"{what} grew from {before} to {value}")
    else:
        rep.add(Status.WARN, f"{value} {what}")


def _temperature(rep: DeviceReport, temp: int | None, warn: int, crit: int,
                 trip: int | None = None) -> None:
    if not temp or temp <= 0:
        return
    if trip and temp >= trip:
        rep.add(Status.CRIT, f"temperature {temp}°C (drive trip point {trip}°C)")
    elif temp >= crit:
        rep.add(Status.CRIT, f"temperature {temp}°C (limit {crit}°C)")
    elif temp >= warn:
        rep.add(Status.WARN, f"temperature {temp}°C (limit {warn}°C)")


def _no_smart_reason(dev: SmartDevice) -> str | None:
    """Why a device has nothing to judge (virtual disk, RAID volume, standby), else None."""
    text = " ".join(dev.errors + dev.warnings).lower()
    if "standby" in text or "sleep" in text:
        return "in standby, not woken (set wake_standby to read it)"
    if "unable to detect device type" in text:
        return "no SMART: unknown device type (a virtual disk?)"
    if dev.smart_available is False or "does not support smart" in text:
        return "no SMART support"
    has_data = (dev.passed is not None or dev.attributes or dev.nvme
                or dev.scsi_grown_defects is not None)
    if not has_data and not (dev.exit_status & 2):
        model = f" ({dev.model})" if dev.model else ""
        return (f"no SMART health data{model}: a RAID volume? list its member disks in "
                "devices with their -d type (megaraid,N / cciss,N)")
    return None


def judge_device(dev: SmartDevice, p: SmartParams,
                 previous: dict[str, int] | None = None) -> DeviceReport:
    """Status, reasons and metrics for one smartctl device report."""
    prev = previous or {}
    rep = DeviceReport(dev.label, info={
        "name": dev.name, "type": dev.dev_type, "protocol": dev.protocol, "model": dev.model,
        "serial": dev.serial, "exit_status": dev.exit_status, "temperature_c": dev.temperature,
        "power_on_hours": dev.power_on_hours, "passed": dev.passed})
    skip = _no_smart_reason(dev)
    if skip is not None:
        rep.status = Status.SKIPPED
        rep.reasons.append(skip)
        return rep
    if dev.exit_status & 2 and dev.passed is None and not dev.attributes and not dev.nvme:
        err = dev.errors[-1] if dev.errors else "device open failed"
        hint = "; needs root (sudo)" if "permission denied" in err.lower() else ""
        rep.add(Status.UNKNOWN, f"{err}{hint}")
        return rep
    if dev.passed is False or dev.exit_status & 8:
        rep.add(Status.CRIT, "SMART overall-health FAILED")
    for attr in dev.attributes.values():
        if attr.when_failed == "now":
            rep.add(Status.CRIT, f"attribute {attr.id} {attr.name} failing now")
        elif attr.when_failed == "past" and attr.id not in (190, 194):
            rep.add(Status.WARN, f"attribute {attr.id} {attr.name} failed in the past")
    for attr_id, what in ATA_COUNTERS.items():
        counter = dev.attributes.get(attr_id)
        if counter is not None:
            _counter(rep, f"ata_{attr_id}", counter.raw, what, prev)
    if dev.self_test_failed or dev.exit_status & 128:
        rep.add(Status.CRIT, "the last self-test failed")
    if dev.error_log_count and p.warn_error_log:
        rep.add(Status.WARN, f"{dev.error_log_count} errors in the ATA error log")
    if dev.nvme:
        _judge_nvme(rep, dev, p, prev)
    else:
        _temperature(rep, dev.temperature, p.warn_temp_c, p.crit_temp_c, dev.drive_trip)
    _counter(rep, "scsi_grown_defects", dev.scsi_grown_defects, "grown defects", prev)
    _counter(rep, "scsi_uncorrected", dev.scsi_uncorrected, "uncorrected errors", prev)
    base = dev.name
    if dev.temperature:
        rep.metrics[f"{base}:temperature_c"] = dev.temperature
    if dev.power_on_hours is not None:
        rep.metrics[f"{base}:power_on_hours"] = dev.power_on_hours
    for key, value in dev.counters().items():
        rep.metrics[f"{base}:{key}"] = value
    if not rep.reasons:
        rep.reasons.append("healthy")
    return rep


def _judge_nvme(rep: DeviceReport, dev: SmartDevice, p: SmartParams,
                prev: dict[str, int]) -> None:
    log = dev.nvme
    warning = log.get("critical_warning")
    if isinstance(warning, int) and warning:
        bits = [t for b, t in NVME_CRITICAL_BITS.items() if warning & (1 << b)]
        rep.add(Status.CRIT, f"NVMe critical warning 0x{warning:02x}: {', '.join(bits)}")
    spare, spare_min = log.get("available_spare"), log.get("available_spare_threshold")
    if isinstance(spare, int) and isinstance(spare_min, int) and spare < spare_min:
        rep.add(Status.CRIT, f"available spare {spare}% below threshold {spare_min}%")
    used = log.get("percentage_used")
    if isinstance(used, int):
        rep.metrics[f"{dev.name}:percentage_used"] = used
        if used >= p.wear_warn_pct:
            rep.add(Status.WARN, f"{used}% of rated endurance used")
    media = log.get("media_errors")
    _counter(rep, "nvme_media_errors", media if isinstance(media, int) else None,
             "media errors", prev)
    _temperature(rep, dev.temperature, p.nvme_warn_temp_c, p.nvme_crit_temp_c)


def judge_windows_disk(disk: WindowsDisk, p: SmartParams,
                       previous: dict[str, int] | None = None) -> DeviceReport:
    """Status for one ``Get-PhysicalDisk`` entry and its reliability counters."""
    prev = previous or {}
    rep = DeviceReport(disk.name, info={
        "serial": disk.serial, "media": disk.media, "bus": disk.bus, "health": disk.health,
        "operational_status": disk.operational, "wear_pct": disk.wear,
        "temperature_c": disk.temperature, "power_on_hours": disk.power_on_hours})
    if disk.virtual:
        rep.status = Status.SKIPPED
        rep.reasons.append(f"virtual disk ({disk.bus}): no SMART")
        return rep
    if disk.health == "Unhealthy":
        rep.add(Status.CRIT, "health Unhealthy")
    elif disk.health == "Warning":
        rep.add(Status.WARN, "health Warning")
    for op in disk.operational:
        if op in _CRIT_OPS:
            rep.add(Status.CRIT, f"operational status {op}")
        elif op in _WARN_OPS:
            rep.add(Status.WARN, f"operational status {op}")
    if disk.wear is not None and disk.wear >= p.wear_warn_pct:
        rep.add(Status.WARN, f"{disk.wear}% of rated endurance used")
    _counter(rep, "read_uncorrected", disk.read_errors_uncorrected, "uncorrected read errors",
             prev)
    _counter(rep, "write_uncorrected", disk.write_errors_uncorrected,
             "uncorrected write errors", prev)
    ssd = disk.media == "SSD" or "nvme" in disk.bus.lower()
    warn, crit = (p.nvme_warn_temp_c, p.nvme_crit_temp_c) if ssd else (p.warn_temp_c,
                                                                       p.crit_temp_c)
    _temperature(rep, disk.temperature, warn, crit, disk.temperature_max)
    key = disk.serial or disk.name
    if disk.temperature:
        rep.metrics[f"{key}:temperature_c"] = disk.temperature
    if disk.wear is not None:
        rep.metrics[f"{key}:percentage_used"] = disk.wear
    if not rep.reasons:
        rep.reasons.append("healthy")
    return rep


def build_smart_result(reports: list[DeviceReport]) -> Result:
    """One result per host: the worst disk leads the summary."""
    if not reports:
        return Result(Status.SKIPPED, "no disks found")
    ordered = sorted(reports, key=lambda r: -r.status.severity)
    worst = ordered[0]
    metrics: dict[str, float] = {}
    for r in reports:
        metrics.update(r.metrics)
    details = {"devices": [r.to_dict() for r in ordered]}
    if worst.status in (Status.OK, Status.SKIPPED):
        judged = [r for r in reports if r.status is Status.OK]
        if not judged:
            return Result(Status.SKIPPED, f"{worst.name}: {worst.reasons[0]}" if len(reports) == 1
                          else f"no disk with SMART data ({len(reports)} skipped: "
                               f"{worst.reasons[0]})", details=details)
        temps = [t for r in judged if (t := r.info.get("temperature_c"))]
        summary = f"{len(judged)} disk{'s' if len(judged) != 1 else ''} healthy"
        if temps:
            summary += f", hottest {max(temps)}°C"
        skipped = len(reports) - len(judged)
        if skipped:
            summary += f" ({skipped} skipped)"
        return Result(Status.OK, summary, metrics=metrics, details=details)
    others = [r for r in ordered[1:] if r.status not in (Status.OK, Status.SKIPPED)]
    summary = f"{worst.name} {worst.status.value}: {', '.join(worst.reasons)}"
    if others:
        summary += f" (also {', '.join(f'{r.name} {r.status.value}' for r in others)})"
    return Result(worst.status, summary, metrics=metrics, details=details)


def device_script(devices: list[DeviceSpec], wake_standby: bool = False) -> str:
    """One round trip reading every disk, each JSON document followed by an end marker."""
    parts = [_PATH]
    for dev in devices:
        argv = ["smartctl", "-a", "--json=c"]
        if not wake_standby:
            argv += ["-n", "standby"]
        argv += ["-d", dev.type or "auto", dev.name]
        parts.append(f"{shlex.join(argv)}; echo \"{END_MARK} $?\"; ")
    return "".join(parts)


def split_device_output(text: str) -> list[str]:
    """The per-device chunks of :func:`device_script` output, in order."""
    chunks = []
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith(END_MARK):
            chunks.append("\n".join(current))
            current = []
        else:
            current.append(line)
    return chunks


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
            if "Get-PhysicalDisk" in str(exc) and "not recognized" in str(exc):
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
            devices = [DeviceSpec(name=s.name, type=s.dev_type)
                       for s in scanned if not s.open_error]
            scan_errors = [s for s in scanned if s.open_error]
        devices = [d for d in devices
                   if not any(fnmatch.fnmatch(d.name, g) for g in p.exclude_devices)]
        reports = [DeviceReport(s.name, Status.UNKNOWN, [f"open failed: {s.open_error}"])
                   for s in scan_errors]
        if not devices and not reports:
            return Result(Status.SKIPPED, "smartctl found no SMART-capable disks (virtual "
                                          "disks such as virtio, VMware or Hyper-V have none)"
                          ), {}
        current: dict[str, Any] = {}
        if devices:
            res = ctx.run(device_script(devices, p.wake_standby), sudo=sudo)
            if res.timed_out:
                return Result(Status.UNKNOWN, "smartctl timed out"), {}
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
            return Result(Status.UNKNOWN, f"smartctl --scan-open failed (exit {code}): "
                                          f"{first[0] if first else 'no output'}")
        return None
