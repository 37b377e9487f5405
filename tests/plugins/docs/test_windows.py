"""docs.collect on Windows: the real WinRM transport against the WS-Management test
endpoint, answering with PowerShell 5.1-style JSON (tests/data/docs/windows_*.json)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from upkeeper import Host, Result, Status
from upkeeper.testing import run_check
from upkeeper_docs.collect import DocsCollect
from upkeeper_winrm import WinRMTransport
from upkeeper_winrm.testserver import Execution, Reply, WSManServer

from .helpers import DATA, make_cert, not_after, section, sha256

SOON, _ = make_cert("www.corp.example.com", 20, ("www.corp.example.com", "corp.example.com"))
STORE, _ = make_cert("srv-web01.corp.example.com", 60)


def der64(cert: Any) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class Windows:
    """Answers the collection script from a fixture and the certificate script from
    certificates made here; records the scripts it saw."""

    def __init__(self, fixture: str) -> None:
        self.fixture = (DATA / fixture).read_text(encoding="utf-8")
        self.scripts: list[str] = []

    def __call__(self, ex: Execution) -> Any:
        script = ex.script
        self.scripts.append(script)
        if "Win32_ComputerSystemProduct" in script:
            return self.fixture
        if "SslStream" in script:
            rows = [{"source": "tcp/443", "der": der64(SOON), "error": None},
                    {"source": "tcp/1433", "der": None,
                     "error": "Authentication failed because the remote party has closed "
                              "the transport stream."},
                    {"source": "C:\\certs\\gone.cer", "der": None,
                     "error": "The system cannot find the file specified."},
                    {"source": "store:LocalMachine\\My", "der": der64(STORE), "error": None}]
            return json.dumps(rows)
        return Reply(stderr="unexpected script", exit_code=1)


def windows_host(server: WSManServer) -> Host:
    return Host("srv-web01", facts={"os_family": "windows"}, vars=server.host_vars())


def collect(fixture: str, params: dict[str, Any] | None = None) -> tuple[Result, Windows]:
    fake = Windows(fixture)
    with WSManServer(fake) as server:
        host = windows_host(server)
        transport = WinRMTransport(host)
        try:
            [res] = run_check(DocsCollect, params or {}, host=host, transport=transport)
        finally:
            transport.close()
    return res, fake


@pytest.fixture(scope="module")
def server2019() -> Iterator[tuple[Result, Windows]]:
    yield collect("windows_server2019_ps51.json", {"cert_files": ["C:\\certs\\gone.cer"]})


def test_server2019_identity_os_hardware(server2019: tuple[Result, Windows]) -> None:
    res, _ = server2019
    doc = res.details["facts"]
    assert res.status is Status.OK, res.summary
    assert doc["platform"] == "windows"
    ident = section(doc, "identity")["fields"]
    assert ident["hostname"] == "srv-web01" and ident["fqdn"] == "srv-web01.corp.example.com"
    assert ident["machine_id"] == "6b1d7e36-2c4f-4a9e-9c61-0f3e5d2b8a17"
    assert ident["smbios_uuid"] == "4223a1b2-c3d4-e5f6-0718-293a4b5c6d7e"
    assert (ident["virtual"], ident["hypervisor"]) == (True, "vmware")
    assert doc["identity_keys"]["machine_id"] == ident["machine_id"]
    os_ = section(doc, "os")["fields"]
    assert os_["build"] == "17763" and os_["eol_date"] == "2029-01-09" and os_["eol"] is False
    assert os_["install_date"] == "2020-09-13T12:26:40Z"  # Get-Date's {value, DateTime}
    assert os_["last_boot"] == "2025-11-29T00:00:00Z" and os_["uptime_seconds"] == 604800
    hw = section(doc, "hardware")["fields"]
    assert (hw["cpu_cores"], hw["cpu_threads"]) == (4, 4)
    assert hw["ram_free_bytes"] == 3145728 * 1024
    assert hw["load_1m"] == {"unavailable": "Windows keeps no load average"}


def test_server2019_lists(server2019: tuple[Result, Windows]) -> None:
    doc = server2019[0].details["facts"]
    assert [f["mount"] for f in section(doc, "filesystems")["items"]] == ["C:", "D:"]
    [nic] = section(doc, "interfaces")["items"]
    assert nic == {"name": "Ethernet0", "mac": "00:50:56:9a:4c:21", "dhcp": False,
                   "addresses": ["10.20.30.50/24", "fe80::5d2c:1a3b:9e8f:7a61%6/64"]}
    assert section(doc, "network")["fields"] == {
        "default_gateway": "10.20.30.1", "dns_servers": ["10.20.30.10", "10.20.30.11"]}
    ports = {(p["proto"], p["address"], p["port"]): p["process"]
             for p in section(doc, "ports")["items"]}
    assert ports[("tcp", "0.0.0.0", 443)] == "System"
    assert ports[("tcp", "10.20.30.50", 1433)] == "sqlservr"
    assert ports[("udp", "0.0.0.0", 123)] == "svchost"  # a lone object, not a list
    assert ports[("tcp", "0.0.0.0", 49670)]["unavailable"].startswith("process 3300")
    soft = {(s["name"], s["arch"]): s["version"] for s in section(doc, "software")["items"]}
    assert ("7-Zip 23.01 (x64)", "x64") in soft
    assert ("SQL Server 2019 Database Engine Services", "x64") not in soft  # SystemComponent
    assert not any("KB5029377" in name for name, _ in soft)  # an update of another product
    vc = "Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.38.33135"
    assert (vc, "x86") in soft and (vc, "x64") in soft
    assert soft[("Microsoft SQL Server 2019 (64-bit)", "x64")] == {
        "unavailable": "no DisplayVersion"}
    assert [r["name"] for r in section(doc, "roles")["items"]][:2] == [
        "FileAndStorage-Services", "NET-Framework-45-Core"]
    services = {s["name"]: s for s in section(doc, "services")["items"]}
    assert services["W3SVC"] == {"name": "W3SVC", "enabled": True, "running": True}
    assert services["SQLSERVERAGENT"]["enabled"] is False
    assert {a["name"] for a in section(doc, "admins")["items"]} == {
        "CORP\\Domain Admins", "SRV-WEB01\\Administrator", "CORP\\svc-backup"}


def test_server2019_certificates(server2019: tuple[Result, Windows]) -> None:
    res, fake = server2019
    certs = {c["source"]: c for c in section(res.details["facts"], "certificates")["items"]}
    assert certs["tcp/443"]["not_after"] == not_after(SOON)
    assert certs["tcp/443"]["sans"] == ["corp.example.com", "www.corp.example.com"]
    assert certs["store:LocalMachine\\My"]["sha256"] == sha256(STORE)
    assert "tcp/1433" not in certs  # no TLS there
    assert certs["C:\\certs\\gone.cer"]["not_after"] == {
        "unavailable": "The system cannot find the file specified."}
    probe = next(s for s in fake.scripts if "SslStream" in s)
    # 443 and 1433 are probed; RPC (135) is skipped by default
    assert "$targets.Add(@('tcp/443','127.0.0.1',443))" in probe
    assert ",135))" not in probe


def test_windows10_errors_and_ps51_quirks() -> None:
    res, _ = collect("windows10_de_errors_ps51.json")
    doc = res.details["facts"]
    assert res.status is Status.WARN and "services" in res.summary
    ident = section(doc, "identity")["fields"]
    assert ident["machine_id"]["unavailable"].startswith("Der Zugriff")
    assert ident["smbios_uuid"] == {"unavailable": "SMBIOS UUID not set"}  # all F
    assert doc["identity_keys"] == {"serial": "PF2ABCDE"}
    assert (ident["virtual"], ident["hypervisor"]) == (False, None)
    assert ident["fqdn"] == {"unavailable": "not joined to a domain"}
    os_ = section(doc, "os")["fields"]
    assert os_["eol"] is None and "not in the EOL table" in os_["eol_date"]["unavailable"]
    assert os_["last_boot"] == "2025-12-05T02:00:00Z"
    assert section(doc, "network")["fields"]["dns_servers"] == {
        "unavailable": "cut off by ConvertTo-Json -Depth"}
    assert section(doc, "network")["fields"]["default_gateway"] == "192.168.178.1"
    wlan = next(i for i in section(doc, "interfaces")["items"] if i["name"] == "WLAN")
    assert wlan["dhcp"] == {"unavailable": "no IPv4 address"}
    eth = next(i for i in section(doc, "interfaces")["items"] if i["name"] == "Ethernet")
    assert eth["dhcp"] is True  # PrefixOrigin as a name (PowerShell 7) works too
    assert section(doc, "software")["items"] == [
        {"name": "Mozilla Firefox (x64 de)", "version": "133.0", "arch": "x64"}]
    assert section(doc, "roles")["unavailable"].startswith("not applicable: Get-WindowsFeature")
    assert section(doc, "services")["unavailable"] == "Zugriff verweigert"
    assert {a["group"] for a in section(doc, "admins")["items"]} == {"Administratoren"}
    assert section(doc, "disks")["items"][0]["serial"] == "S4ENNX0N123456"


def test_one_script_reads_the_registry_not_win32_product(
        server2019: tuple[Result, Windows]) -> None:
    _, fake = server2019
    main = [s for s in fake.scripts if "Win32_ComputerSystemProduct" in s]
    assert len(main) == 1 and len(fake.scripts) == 2  # collection + certificates
    assert "Win32_Product" not in main[0]  # it makes MSI re-check every package
    assert "WOW6432Node" in main[0] and "S-1-5-32-544" in main[0]
    assert "CommandLine" not in main[0] and "Environment" not in main[0]


def test_a_failing_script_is_every_category_unavailable_with_the_error() -> None:
    def broken(ex: Execution) -> Any:
        return Reply(stderr="Get-CimInstance : Access denied", exit_code=1)

    with WSManServer(broken) as server:
        host = windows_host(server)
        transport = WinRMTransport(host)
        try:
            [res] = run_check(DocsCollect, {}, host=host, transport=transport)
        finally:
            transport.close()
    doc = res.details["facts"]
    assert res.status is Status.WARN
    reasons = {n: s["unavailable"] for n, s in doc["sections"].items()}
    assert reasons["identity"].startswith("collection script failed") and \
        "Access denied" in reasons["identity"]
    assert reasons["certificates"] == "the collector produced no section"
    assert doc["identity_keys"] == {}
