"""disk.smart: smartctl JSON parsing and judging, and the check through FakeTransport."""

from __future__ import annotations

import json
import shlex
import shutil
from typing import Any

import pytest

from upkeeper import Result, Status
from upkeeper.store.history import History
from upkeeper.testing import FakeTransport, make_host, run_check
from upkeeper.transport.local import LocalTransport
from upkeeper_disk.smart import END_MARK, DiskSmart
from upkeeper_disk.smartdata import (
    decode_exit_status,
    parse_smartctl_json,
    parse_smartctl_scan,
    parse_windows_disks,
)
from upkeeper_disk.smarthealth import (
    SmartParams,
    build_smart_result,
    judge_device,
    judge_windows_disk,
)

from .helpers import CORPUS, DATA, data


def judge(name: str, **params: Any) -> Result:
    dev = parse_smartctl_json(data(name))
    return build_smart_result([judge_device(dev, SmartParams(**params))])


def test_exit_status_bits() -> None:
    assert decode_exit_status(0) == []
    assert decode_exit_status(216) == [
        "SMART status says DISK FAILING", "prefail attributes at or below threshold",
        "the device error log has errors", "the self-test log has errors"]


def test_parse_ata_failing_fields() -> None:
    dev = parse_smartctl_json(data("smartctl_ata_failing.json"))
    assert (dev.name, dev.dev_type, dev.protocol, dev.passed) == ("/dev/sdb", "sat", "ATA", False)
    assert dev.attributes[5].raw == 3952 and dev.attributes[5].when_failed == "now"
    assert dev.attributes[194].raw == 41  # from "41 (Min/Max 18/46)", not the packed value
    assert dev.temperature == 41 and dev.self_test_failed and dev.error_log_count == 212
    assert dev.counters() == {"ata_5": 3952, "ata_187": 212, "ata_188": 0, "ata_197": 176,
                              "ata_198": 176}


@pytest.mark.parametrize(("name", "status", "words"), [
    ("smartctl_ata_healthy.json", Status.OK, ["1 disk healthy", "34°C"]),
    ("smartctl_ata_failing.json", Status.CRIT,
     ["/dev/sdb (ST4000DM004-2CV104)", "overall-health FAILED", "+4 more"]),
    ("smartctl_ata_pending_sectors.json", Status.WARN, ["/dev/sdc", "8 pending sectors"]),
    ("smartctl_ata_hot.json", Status.WARN, ["temperature 58°C (limit 55°C)"]),
    ("smartctl_ata_standby.json", Status.SKIPPED, ["/dev/sde", "standby"]),
    ("smartctl_nvme_healthy.json", Status.OK, ["41°C"]),
    ("smartctl_nvme_worn.json", Status.WARN,
     ["/dev/nvme1", "97% of rated endurance used", "3 media errors"]),
    ("smartctl_nvme_spare_critical.json", Status.CRIT,
     ["/dev/nvme2", "critical warning 0x05", "available spare below threshold",
      "spare 4% below threshold 10%"]),
    ("smartctl_scsi_healthy.json", Status.OK, ["29°C"]),
    ("smartctl_scsi_failing.json", Status.CRIT,
     ["/dev/sdc (HGST HUC101860CSS200)", "FAILED", "1837 grown defects"]),
    ("smartctl_a_virtio_unknown_type.json", Status.SKIPPED, ["/dev/vda", "virtual disk"]),
    ("smartctl_a_permission_denied.json", Status.UNKNOWN, ["Permission denied", "sudo"]),
    ("smartctl_a_no_such_device.json", Status.UNKNOWN, ["/dev/sdz", "No such device"]),
])
def test_fixtures_judged(name: str, status: Status, words: list[str]) -> None:
    res = judge(name)
    assert res.status is status, res.summary
    for word in words:
        assert word in res.summary


def test_temperature_and_wear_thresholds_are_params() -> None:
    assert judge("smartctl_ata_hot.json", warn_temp_c=60).status is Status.OK
    assert judge("smartctl_ata_hot.json", crit_temp_c=58).status is Status.CRIT
    assert judge("smartctl_nvme_worn.json", warn_wear_pct=98).summary.endswith(
        "WARN: 3 media errors")


def test_metrics_per_device() -> None:
    res = judge("smartctl_nvme_worn.json")
    assert res.metrics["/dev/nvme1:percentage_used"] == 97
    assert res.metrics["/dev/nvme1:nvme_media_errors"] == 3
    assert res.metrics["/dev/nvme1:temperature_c"] == 41


def test_scan_open() -> None:
    devs = parse_smartctl_scan(data("smartctl_scan_open_mixed.json"))
    assert [(d.name, d.dev_type) for d in devs] == [
        ("/dev/sda", "sat"), ("/dev/nvme0", "nvme"), ("/dev/bus/0", "megaraid,0"),
        ("/dev/sdf", "scsi")]
    assert "No such device" in devs[3].open_error
    assert parse_smartctl_scan(data("smartctl_scan_open_empty_vm.json")) == []


class SmartHost:
    """Answers smartctl commands from fixture files, like a host with these disks."""

    def __init__(self, disks: dict[str, str], scan: str = "smartctl_scan_open_mixed.json"):
        self.disks = disks
        self.scan = scan

    def __call__(self, command: str, **kw: Any) -> tuple[int, str, str] | None:
        if "--scan-open" in command:
            return 0, data(self.scan), ""
        if "smartctl -a" not in command:
            return None
        out = []
        for part in command.split("; "):
            if part.startswith("smartctl -a"):
                argv = shlex.split(part)
                fixture = self.disks.get(argv[-1])
                out.append(data(fixture) if fixture else "")
                out.append(f"{END_MARK} 0")
        return 0, "\n".join(out) + "\n", ""


def smart_transport(disks: dict[str, str], is_root: bool = True, **kw: Any) -> FakeTransport:
    host = make_host("nas01", facts={"is_root": is_root})
    return FakeTransport(host, handler=SmartHost(disks, **kw))


def test_check_scans_and_reads_every_disk_in_one_round_trip() -> None:
    tr = smart_transport({"/dev/sda": "smartctl_ata_healthy.json",
                          "/dev/nvme0": "smartctl_nvme_worn.json",
                          "/dev/bus/0": "smartctl_ata_failing.json"})
    [res] = run_check(DiskSmart, {}, transport=tr)
    assert len(tr.calls) == 2
    assert "--device=megaraid,0 -- /dev/bus/0" in tr.calls[1].command
    assert "-n standby" in tr.calls[1].command
    assert not any(c.sudo for c in tr.calls)
    assert res.status is Status.CRIT
    assert res.summary.startswith("/dev/sdb (ST4000DM004-2CV104) CRIT: SMART overall-health")
    assert res.summary.endswith("(also /dev/sdf UNKNOWN, /dev/nvme1 (INTEL SSDPEKNW010T8) WARN)")
    assert [d["status"] for d in res.details["devices"]] == ["CRIT", "UNKNOWN", "WARN", "OK"]


def test_usb_bridge_without_smart_is_skipped_and_excludes_apply_to_scan_errors() -> None:
    scan = {"devices": [
        {"name": "/dev/sdg", "type": "scsi", "protocol": "SCSI",
         "open_error": "Unknown USB bridge [0x152d:0x0578 (0x214)]"},
        {"name": "/dev/sdh", "type": "scsi", "protocol": "SCSI",
         "open_error": "Smartctl open device: /dev/sdh failed: No such device"}]}
    tr = FakeTransport(make_host("nas01"), {"--scan-open": json.dumps(scan)})
    [res] = run_check(DiskSmart, {"exclude_devices": ["/dev/sdh"]}, transport=tr)
    assert res.status is Status.SKIPPED and "USB enclosure" in res.summary
    assert len(tr.calls) == 1


def test_sudo_when_not_root_unless_overridden() -> None:
    tr = smart_transport({}, is_root=False, scan="smartctl_scan_open_empty_vm.json")
    [res] = run_check(DiskSmart, {}, transport=tr)
    assert res.status is Status.SKIPPED and "virtual" in res.summary
    assert tr.calls[0].sudo
    tr = smart_transport({}, is_root=False, scan="smartctl_scan_open_empty_vm.json")
    run_check(DiskSmart, {"sudo": False}, transport=tr)
    assert not tr.calls[0].sudo


def test_growth_of_bad_sectors_since_last_run_is_crit() -> None:
    hist = History(":memory:")
    fixture = json.loads(data("smartctl_ata_pending_sectors.json"))

    def run_with_pending(n: int, tmp: dict[str, str]) -> Result:
        fixture["ata_smart_attributes"]["table"][7]["raw"] = {"value": n, "string": str(n)}
        tmp["text"] = json.dumps(fixture)
        tr = FakeTransport(make_host("nas01"), handler=lambda cmd, **kw: (
            0, tmp["text"] + f"\n{END_MARK} 0\n", "") if "smartctl -a" in cmd else None)
        [res] = run_check(DiskSmart, {"devices": ["/dev/sdc"]}, transport=tr, history=hist)
        return res

    box: dict[str, str] = {}
    first = run_with_pending(8, box)
    assert first.status is Status.WARN and "8 pending sectors" in first.summary
    grown = run_with_pending(12, box)
    assert grown.status is Status.CRIT
    assert "pending sectors grew from 8 to 12" in grown.summary
    again = run_with_pending(12, box)
    assert again.status is Status.WARN


def test_devices_param_is_quoted_and_excludes_apply() -> None:
    seen: list[str] = []

    def handler(cmd: str, **kw: Any) -> tuple[int, str, str]:
        seen.append(cmd)
        return 0, "", ""

    tr = FakeTransport(make_host("nas01"), handler=handler)
    params = {"devices": ["/dev/sda; touch /tmp/pwned", {"name": "/dev/bus/0",
                                                          "type": "megaraid,1"},
                          "/dev/sdz"], "exclude_devices": ["/dev/sdz"]}
    [res] = run_check(DiskSmart, params, transport=tr)
    assert "'/dev/sda; touch /tmp/pwned'" in seen[0]
    assert "--device=megaraid,1 -- /dev/bus/0" in seen[0] and "/dev/sdz" not in seen[0]
    assert res.status is Status.UNKNOWN  # no output for either disk


@pytest.mark.parametrize(("response", "words"), [
    ((127, "", "upkeeper: smartctl not found"), ["smartctl not found", "apt-get install"]),
    ((1, "", "sudo: a password is required"), ["sudo failed", "a password is required"]),
    ((1, data("smartctl6_scan_no_json.txt"), ""), ["older than 7.0"]),
    ((2, "garbage", ""), ["exit 2", "garbage"]),
])
def test_scan_problems_are_unknown_with_a_reason(response: tuple[int, str, str],
                                                 words: list[str]) -> None:
    tr = FakeTransport(make_host("nas01"), {"--scan-open": response})
    [res] = run_check(DiskSmart, {}, transport=tr)
    assert res.status is Status.UNKNOWN
    for word in words:
        assert word in res.summary
    # The same diagnosis when disks are named and no scan runs.
    tr = FakeTransport(make_host("nas01"), {"smartctl -a": response})
    [res] = run_check(DiskSmart, {"devices": ["/dev/sda"]}, transport=tr)
    assert res.status is Status.UNKNOWN
    for word in words:
        assert word in res.summary


def test_windows_physical_disks() -> None:
    host = make_host("fs01", facts={"os_family": "windows"})
    tr = FakeTransport(host, {"Get-PhysicalDisk": data("windows_physicaldisk_mixed.json")})
    [res] = run_check(DiskSmart, {}, transport=tr)
    assert tr.calls[0].kind == "powershell"
    assert res.status is Status.CRIT
    assert res.summary.startswith("disk 1 (WDC WD40EFRX-68N32N0) CRIT: health Warning, "
                                  "operational status Predictive Failure")
    statuses = {d["device"]: d["status"] for d in res.details["devices"]}
    assert statuses["disk 2 (Msft Virtual Disk)"] == "SKIPPED"
    assert statuses["disk 0 (Samsung SSD 870 EVO 1TB)"] == "OK"


def test_windows_ps51_numeric_enums() -> None:
    [disk] = parse_windows_disks(json.loads(data("windows_physicaldisk_ps51_numeric.json")))
    assert (disk.health, disk.media, disk.bus) == ("Unhealthy", "SSD", "NVMe")
    assert disk.operational == ["Degraded", "Failed Media"]


def test_windows_without_storage_cmdlets_is_skipped() -> None:
    host = make_host("old01", facts={"os_family": "windows"})
    err = ("The term 'Get-PhysicalDisk' is not recognized as the name of a cmdlet, "
           "function, script file, or operable program.\n"
           "    + CategoryInfo          : ObjectNotFound: (Get-PhysicalDisk:String) [], "
           "CommandNotFoundException\n"
           "    + FullyQualifiedErrorId : CommandNotFoundException\n")
    tr = FakeTransport(host, {"Get-PhysicalDisk": (1, "", err)})
    [res] = run_check(DiskSmart, {}, transport=tr)
    assert res.status is Status.SKIPPED and "Server 2012" in res.summary


CORPUS_EXPECTED = {
    "scrutiny__smart-fail2.json": (Status.CRIT, ["/dev/sdc", "FAILED", "1975 reallocated"]),
    "smartctl_exporter__nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json": (
        Status.CRIT, ["/dev/nvme0", "volatile memory backup failed"]),
    "smartctl_exporter__SEAGATE_ST373453LC_26.json": (
        Status.WARN, ["/dev/sdb", "260 grown defects", "536 uncorrected errors"]),
    "smartctl_exporter__HGST_HUS724020ALE640_28.json": (
        Status.WARN, ["/dev/sdb", "12 errors in the ATA error log"]),
    "scrutiny__smart-fail.json": (Status.UNKNOWN, ["/dev/sda", "Open failed", "Administrator"]),
    "scrutiny__smart-raid.json": (Status.SKIPPED, ["RAID volume"]),
}


@pytest.mark.corpus
@pytest.mark.parametrize("path", sorted((CORPUS / "smartctl").glob("*.json")),
                         ids=lambda p: p.name)
def test_corpus_samples(path: Any) -> None:
    res = build_smart_result([judge_device(parse_smartctl_json(path.read_text()),
                                           SmartParams())])
    status, words = CORPUS_EXPECTED.get(path.name, (Status.OK, ["healthy"]))
    assert res.status is status, res.summary
    for word in words:
        assert word in res.summary


def test_fixture_files_exist() -> None:
    assert len(list(DATA.glob("smartctl_*.json"))) >= 15


@pytest.mark.skipif(shutil.which("smartctl") is None and not
                    shutil.which("/usr/sbin/smartctl"), reason="smartctl not installed")
def test_real_smartctl_on_this_machine() -> None:
    host = make_host("localhost", facts={"is_root": __import__("os").geteuid() == 0})
    [res] = run_check(DiskSmart, {}, host=host, transport=LocalTransport(host))
    # A VM has no SMART disks (SKIPPED); real hardware gives a health verdict.
    assert res.status is not Status.UNKNOWN, res.summary


@pytest.mark.skipif(shutil.which("smartctl") is None and not
                    shutil.which("/usr/sbin/smartctl"), reason="smartctl not installed")
def test_real_smartctl_named_devices_each_get_their_answer() -> None:
    host = make_host("localhost", facts={"is_root": __import__("os").geteuid() == 0})
    params = {"devices": ["/dev/upk-missing-a", {"name": "/dev/upk-missing-b", "type": "sat"}]}
    [res] = run_check(DiskSmart, params, host=host, transport=LocalTransport(host))
    devices = {d["device"]: d for d in res.details["devices"]}
    assert set(devices) == {"/dev/upk-missing-a", "/dev/upk-missing-b"}
    # smartctl cannot guess a type for a missing node; with a type it tries to open it.
    assert devices["/dev/upk-missing-a"]["status"] == "SKIPPED"
    assert "unknown device type" in devices["/dev/upk-missing-a"]["reasons"][0]
    assert devices["/dev/upk-missing-b"]["status"] == "UNKNOWN"
    assert "No such device" in devices["/dev/upk-missing-b"]["reasons"][0]
    assert res.status is Status.UNKNOWN


@pytest.mark.corpus
def test_corpus_windows_reliability_counter_with_cim_metadata() -> None:
    path = (CORPUS / "disk_usage" /
            "windows__Get-StorageReliabilityCounter_ConvertTo-Json_partial_ps51.json")
    [disk] = parse_windows_disks(json.loads(path.read_text()))
    assert (disk.temperature, disk.temperature_max, disk.wear) == (46, 70, 0)
    res = build_smart_result([judge_windows_disk(disk, SmartParams())])
    assert res.status is Status.OK and "46°C" in res.summary
