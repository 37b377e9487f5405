"""SMART verdicts: params, and the status and reasons for each disk (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from upkeeper import Params, Result, Status
from upkeeper.argv import check_operand, check_path
from upkeeper.measures import grade, renamed_params
from upkeeper_disk.smartdata import ATA_COUNTERS, NVME_CRITICAL_BITS, SmartDevice, WindowsDisk

#: Reasons shown in the one-line summary; details keep them all.
MAX_REASONS = 4

_CRIT_OPS = {"Predictive Failure", "Error", "Non-Recoverable Error", "Failed Media"}
_WARN_OPS = {"Degraded", "Stressed", "Lost Communication", "No Contact", "Transient Error",
             "Supporting Entity in Error", "Aborted"}


class DeviceSpec(BaseModel):
    """A disk to query instead of scanning, e.g. ``{name: /dev/bus/0, type: megaraid,0}``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    type: str = "auto"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_path(v)

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        return check_operand(v)


class SmartParams(Params):
    devices: list[DeviceSpec | str] = Field(
        default_factory=list, description="Disks to query (default: smartctl --scan-open)")
    exclude_devices: list[str] = Field(default_factory=list,
                                       description="Device name globs to leave out")
    sudo: bool | None = Field(None, description="Run smartctl through sudo (default: "
                                                "when not connected as root)")
    warn_temp_c: int = Field(55, description="WARN at this HDD/SATA SSD temperature")
    crit_temp_c: int = Field(65, description="CRIT at this HDD/SATA SSD temperature")
    warn_nvme_temp_c: int = Field(70, description="WARN at this NVMe temperature")
    crit_nvme_temp_c: int = Field(80, description="CRIT at this NVMe temperature")
    warn_wear_pct: int = Field(90, ge=0, description="WARN when an SSD used this % of its life")
    warn_error_log: bool = Field(True, description="WARN when the ATA error log has entries")
    wake_standby: bool = Field(False, description="Spin up sleeping disks to read them")

    _renamed = model_validator(mode="before")(renamed_params(
        {"nvme_warn_temp_c": "warn_nvme_temp_c", "nvme_crit_temp_c": "crit_nvme_temp_c",
         "wear_warn_pct": "warn_wear_pct"}, since="1.1", owner="disk.smart"))

    @field_validator("devices")
    @classmethod
    def _device_names(cls, v: list[DeviceSpec | str]) -> list[DeviceSpec | str]:
        for dev in v:
            if isinstance(dev, str):
                check_path(dev)
        return v


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
    if trip and grade(temp, crit=trip) is Status.CRIT:
        rep.add(Status.CRIT, f"temperature {temp}°C (drive trip point {trip}°C)")
        return
    status = grade(temp, warn, crit)
    if status is not Status.OK:
        limit = crit if status is Status.CRIT else warn
        rep.add(status, f"temperature {temp}°C (limit {limit}°C)")


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
        return ("no SMART health data: a RAID volume? list its member disks in devices "
                "with their -d type (megaraid,N / cciss,N)")
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
        low = err.lower()
        hint = ""
        if "permission denied" in low:
            hint = "; needs root (sudo)"
        elif "error=5" in low or "access is denied" in low:
            hint = "; needs an elevated (Administrator) session"
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
        if grade(used, p.warn_wear_pct) is Status.WARN:
            rep.add(Status.WARN, f"{used}% of rated endurance used")
    media = log.get("media_errors")
    _counter(rep, "nvme_media_errors", media if isinstance(media, int) else None,
             "media errors", prev)
    _temperature(rep, dev.temperature, p.warn_nvme_temp_c, p.crit_nvme_temp_c)


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
    if disk.wear is not None and grade(disk.wear, p.warn_wear_pct) is Status.WARN:
        rep.add(Status.WARN, f"{disk.wear}% of rated endurance used")
    _counter(rep, "read_uncorrected", disk.read_errors_uncorrected, "uncorrected read errors",
             prev)
    _counter(rep, "write_uncorrected", disk.write_errors_uncorrected,
             "uncorrected write errors", prev)
    ssd = disk.media == "SSD" or "nvme" in disk.bus.lower()
    warn, crit = (p.warn_nvme_temp_c, p.crit_nvme_temp_c) if ssd else (p.warn_temp_c,
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
    reasons = worst.reasons[:MAX_REASONS]
    if len(worst.reasons) > MAX_REASONS:
        reasons.append(f"+{len(worst.reasons) - MAX_REASONS} more")
    summary = f"{worst.name} {worst.status.value}: {', '.join(reasons)}"
    if others:
        summary += f" (also {', '.join(f'{r.name} {r.status.value}' for r in others)})"
    return Result(worst.status, summary, metrics=metrics, details=details)
