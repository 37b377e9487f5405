"""Pure parsers for SMART data: ``smartctl --json`` (7.0+) and Windows storage cmdlets."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

#: smartctl's exit-status bits (man smartctl, "RETURN VALUES").
EXIT_BITS: dict[int, str] = {
    0: "command line did not parse",
    1: "device open failed or did not answer",
    2: "a SMART or other command to the disk failed",
    3: "SMART status says DISK FAILING",
    4: "prefail attributes at or below threshold",
    5: "attributes were at or below threshold in the past",
    6: "the device error log has errors",
    7: "the self-test log has errors",
}

#: ATA attributes whose raw value counts bad sectors or failed I/O.
ATA_COUNTERS: dict[int, str] = {
    5: "reallocated sectors",
    187: "reported uncorrectable errors",
    188: "command timeouts",
    197: "pending sectors",
    198: "offline uncorrectable sectors",
}

#: Bits of the NVMe SMART/health log's critical_warning byte.
NVME_CRITICAL_BITS: dict[int, str] = {
    0: "available spare below threshold",
    1: "temperature outside limits",
    2: "NVM subsystem reliability degraded",
    3: "media placed in read-only mode",
    4: "volatile memory backup failed",
    5: "persistent memory region unreliable",
}

_FIRST_INT = re.compile(r"-?\d+")


class SmartParseError(ValueError):
    """The text is not smartctl JSON output."""


@dataclass
class AtaAttribute:
    id: int
    name: str
    value: int | None
    worst: int | None
    thresh: int | None
    raw: int | None
    when_failed: str = ""


@dataclass
class SmartDevice:
    """What one ``smartctl -a --json`` run says about one disk."""

    name: str
    dev_type: str = ""
    protocol: str = ""
    model: str = ""
    serial: str = ""
    exit_status: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    smart_available: bool | None = None
    smart_enabled: bool | None = None
    passed: bool | None = None
    temperature: int | None = None
    drive_trip: int | None = None
    power_on_hours: int | None = None
    attributes: dict[int, AtaAttribute] = field(default_factory=dict)
    nvme: dict[str, Any] = field(default_factory=dict)
    scsi_grown_defects: int | None = None
    scsi_uncorrected: int | None = None
    error_log_count: int | None = None
    self_test_failed: bool = False
    version: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        """``/dev/sda (WDC WD20EFRX-68EUZN0)`` for summaries."""
        return f"{self.name} ({self.model})" if self.model else self.name

    @property
    def key(self) -> str:
        """Stable identity for history: the serial number when known."""
        return self.serial or f"{self.name}:{self.dev_type}"

    def counters(self) -> dict[str, int]:
        """Error counters whose growth matters, keyed by a stable name."""
        out: dict[str, int] = {}
        for attr_id in ATA_COUNTERS:
            attr = self.attributes.get(attr_id)
            if attr is not None and attr.raw is not None:
                out[f"ata_{attr_id}"] = attr.raw
        media = _int(self.nvme.get("media_errors"))
        if media is not None:
            out["nvme_media_errors"] = media
        if self.scsi_grown_defects is not None:
            out["scsi_grown_defects"] = self.scsi_grown_defects
        if self.scsi_uncorrected is not None:
            out["scsi_uncorrected"] = self.scsi_uncorrected
        return out


def decode_exit_status(code: int) -> list[str]:
    """The meanings of the bits set in smartctl's exit status."""
    return [text for bit, text in EXIT_BITS.items() if code & (1 << bit)]


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        m = _FIRST_INT.search(value)
        return int(m.group()) if m else None
    return None


def _raw(attr: dict[str, Any]) -> int | None:
    raw = attr.get("raw") or {}
    # The string holds what smartctl decoded ("25 (Min/Max 19/39)", "0 0 1"); the value
    # can be a packed 48-bit number for temperatures and some vendor counters.
    from_string = _int(raw.get("string"))
    return from_string if from_string is not None else _int(raw.get("value"))


def load_json(text: str) -> dict[str, Any]:
    """The JSON object smartctl printed (text before the object, as sudo warnings, ignored)."""
    start = text.find("{")
    if start < 0:
        raise SmartParseError(f"no JSON in smartctl output: {text.strip()[:120]!r}")
    try:
        data = json.loads(text[start:])
    except json.JSONDecodeError as exc:
        raise SmartParseError(f"smartctl output is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SmartParseError("smartctl JSON is not an object")
    return data


def parse_smartctl_json(text: str) -> SmartDevice:
    """Parse ``smartctl -a --json`` (or ``-x``, or ``--info --health --attributes``).

    :raises SmartParseError: the output is not a smartctl JSON document.
    """
    d = load_json(text)
    sc = d.get("smartctl") or {}
    dev = d.get("device") or {}
    argv = sc.get("argv") or []
    name = dev.get("name") or next((a for a in reversed(argv) if str(a).startswith("/")), "")
    out = SmartDevice(name=str(name), dev_type=str(dev.get("type") or ""),
                      protocol=str(dev.get("protocol") or ""),
                      exit_status=_int(sc.get("exit_status")) or 0,
                      version=tuple(v for v in sc.get("version") or [] if isinstance(v, int)))
    for msg in sc.get("messages") or []:
        text_ = str(msg.get("string", "")).strip()
        (out.errors if msg.get("severity") == "error" else out.warnings).append(text_)
    out.model = str(d.get("model_name") or d.get("scsi_model_name") or
                    " ".join(x for x in (d.get("vendor"), d.get("product")) if x) or "").strip()
    out.serial = str(d.get("serial_number") or "")
    support = d.get("smart_support") or {}
    out.smart_available = support.get("available")
    out.smart_enabled = support.get("enabled")
    status = d.get("smart_status")
    if isinstance(status, dict) and isinstance(status.get("passed"), bool):
        out.passed = status["passed"]
    temp = d.get("temperature") or {}
    out.temperature = _int(temp.get("current"))
    out.drive_trip = _int(temp.get("drive_trip")) or _int(temp.get("op_limit_max"))
    out.power_on_hours = _int((d.get("power_on_time") or {}).get("hours"))
    for attr in (d.get("ata_smart_attributes") or {}).get("table") or []:
        attr_id = _int(attr.get("id"))
        if attr_id is None:
            continue
        out.attributes[attr_id] = AtaAttribute(
            id=attr_id, name=str(attr.get("name", "")), value=_int(attr.get("value")),
            worst=_int(attr.get("worst")), thresh=_int(attr.get("thresh")),
            raw=_raw(attr), when_failed=str(attr.get("when_failed") or ""))
    if out.temperature is None:
        for attr_id in (194, 190):
            if attr_id in out.attributes:
                out.temperature = out.attributes[attr_id].raw
                break
    nvme_log = d.get("nvme_smart_health_information_log")
    if isinstance(nvme_log, dict):
        out.nvme = nvme_log
        if out.temperature is None:
            out.temperature = _int(nvme_log.get("temperature"))
    out.scsi_grown_defects = _int(d.get("scsi_grown_defect_list"))
    counters = d.get("scsi_error_counter_log")
    if isinstance(counters, dict):
        out.scsi_uncorrected = sum(_int((counters.get(k) or {}).get("total_uncorrected_errors"))
                                   or 0 for k in ("read", "write", "verify"))
    err_log = d.get("ata_smart_error_log") or {}
    for part in ("extended", "summary"):
        if isinstance(err_log.get(part), dict) and "count" in err_log[part]:
            out.error_log_count = _int(err_log[part]["count"])
            break
    tests = d.get("ata_smart_self_test_log") or {}
    for part in ("extended", "standard"):
        table = (tests.get(part) or {}).get("table") or []
        if table:
            # The newest test comes first; an old failure later fixed by a pass is moot.
            out.self_test_failed = (table[0].get("status") or {}).get("passed") is False
            break
    return out


@dataclass
class ScanEntry:
    name: str
    dev_type: str
    protocol: str = ""
    open_error: str = ""


def parse_smartctl_scan(text: str) -> list[ScanEntry]:
    """Devices from ``smartctl --scan-open --json`` (no ``devices`` key means none)."""
    d = load_json(text)
    out = []
    for dev in d.get("devices") or []:
        if not isinstance(dev, dict) or not dev.get("name"):
            continue
        out.append(ScanEntry(str(dev["name"]), str(dev.get("type") or "auto"),
                             str(dev.get("protocol") or ""), str(dev.get("open_error") or "")))
    return out


#: MSFT_PhysicalDisk enum values as PowerShell 5.1 serialises them (numbers).
PHYSICAL_HEALTH = {0: "Healthy", 1: "Warning", 2: "Unhealthy", 5: "Unknown"}
OPERATIONAL_STATUS = {
    0: "Unknown", 1: "Other", 2: "OK", 3: "Degraded", 4: "Stressed",
    5: "Predictive Failure", 6: "Error", 7: "Non-Recoverable Error", 8: "Starting",
    9: "Stopping", 10: "Stopped", 11: "In Service", 12: "No Contact",
    13: "Lost Communication", 14: "Aborted", 15: "Dormant",
    16: "Supporting Entity in Error", 17: "Completed", 18: "Power Mode",
    0xD010: "In Maintenance", 0xD011: "Transient Error", 0xD012: "Failed Media",
}


BUS_TYPES = {1: "SCSI", 3: "ATA", 6: "Fibre Channel", 7: "USB", 8: "RAID", 9: "iSCSI",
             10: "SAS", 11: "SATA", 12: "SD", 13: "MMC", 14: "Virtual",
             15: "File Backed Virtual", 16: "Storage Spaces", 17: "NVMe"}


@dataclass
class WindowsDisk:
    """One ``Get-PhysicalDisk`` entry with its ``Get-StorageReliabilityCounter`` values."""

    name: str
    serial: str = ""
    media: str = ""
    bus: str = ""
    health: str = "Unknown"
    operational: list[str] = field(default_factory=list)
    wear: int | None = None
    temperature: int | None = None
    temperature_max: int | None = None
    read_errors_uncorrected: int | None = None
    write_errors_uncorrected: int | None = None
    power_on_hours: int | None = None

    @property
    def virtual(self) -> bool:
        return "virtual" in self.bus.lower() or "virtual disk" in self.name.lower()


def _enum(value: Any, names: dict[int, str]) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, f"status {value}")
    return str(value or "").strip() or "Unknown"


def parse_windows_disks(rows: Any) -> list[WindowsDisk]:
    """Disks from the JSON objects of :data:`~upkeeper_disk.smart.WINDOWS_SCRIPT`."""
    if isinstance(rows, dict):
        rows = [rows]
    out = []
    for row in rows or []:
        if not isinstance(row, dict):
            continue
        ops = row.get("OperationalStatus")
        ops_list = ops if isinstance(ops, list) else [ops] if ops is not None else []
        flat: list[str] = []
        for op in ops_list:
            text = _enum(op, OPERATIONAL_STATUS)
            flat += [t.strip() for t in text.split(",") if t.strip()]
        name = str(row.get("FriendlyName") or row.get("DeviceId") or "disk").strip()
        if row.get("DeviceId") not in (None, ""):
            name = f"disk {row['DeviceId']} ({name})"
        out.append(WindowsDisk(
            name=name, serial=str(row.get("SerialNumber") or "").strip(),
            media=_enum(row.get("MediaType"), {0: "Unspecified", 3: "HDD", 4: "SSD", 5: "SCM"}),
            bus=_enum(row.get("BusType"), BUS_TYPES),
            health=_enum(row.get("HealthStatus"), PHYSICAL_HEALTH),
            operational=flat, wear=_int(row.get("Wear")),
            temperature=_int(row.get("Temperature")),
            temperature_max=_int(row.get("TemperatureMax")),
            read_errors_uncorrected=_int(row.get("ReadErrorsUncorrected")),
            write_errors_uncorrected=_int(row.get("WriteErrorsUncorrected")),
            power_on_hours=_int(row.get("PowerOnHours")),
        ))
    return out
