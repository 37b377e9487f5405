"""docs.collect on this machine through the local transport: real commands, a real TLS
listener, real certificate files, and secrets planted where a careless collector looks."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from upkeeper import Result, Status
from upkeeper.testing import make_host, run_check
from upkeeper.transport.local import LocalTransport
from upkeeper_docs import certs
from upkeeper_docs.collect import DocsCollect
from upkeeper_docs.facts import CATEGORIES

from .helpers import (
    TLSListener,
    assert_no_secrets,
    make_cert,
    not_after,
    pem,
    planted_files,
    secret_listener,
    section,
    sha256,
)

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux host"),
              pytest.mark.slow]


def collect(params: dict[str, Any] | None = None) -> Result:
    host = make_host("localhost")
    [res] = run_check(DocsCollect, params or {}, host=host, transport=LocalTransport(host))
    return res


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One collection with everything planted (collecting is the slow part)."""
    tmp = tmp_path_factory.mktemp("docs")
    cert, key = make_cert("tls.example.test", 20, ("tls.example.test", "localhost"))
    listener = TLSListener(tmp, cert, key)
    proc, secret_port = secret_listener()
    files = planted_files(tmp)
    try:
        res = collect({"cert_files": [str(files.soon), str(files.later), str(files.config),
                                      str(tmp / "missing.pem")],
                       "tls_ports": [listener.port, secret_port]})
        yield {"res": res, "doc": res.details["facts"], "listener": listener, "cert": cert,
               "files": files, "secret_port": secret_port}
    finally:
        listener.close()
        proc.kill()
        proc.wait()


def test_every_category_is_there_with_when_and_how(world: dict[str, Any]) -> None:
    res, doc = world["res"], world["doc"]
    assert res.status in (Status.OK, Status.WARN), res.summary
    assert res.summary.startswith("documented: ")
    assert doc["schema_version"] == 1 and doc["platform"] == "linux"
    assert doc["host"] == "localhost"
    assert list(doc["sections"]) == list(CATEGORIES)
    for name, sec in doc["sections"].items():
        assert sec["source"] and sec["collected_at"] >= doc["collected_at"] - 1, name
        kind = CATEGORIES[name]
        assert kind in sec, name
        if sec["unavailable"] is None:
            for key, value in (sec.get("fields") or {}).items():
                # a value is there, or says why not: never a silent empty
                assert value not in ("", [], {}), (name, key)
    json.dumps(doc)  # plain JSON


def test_identity_and_os_match_this_machine(world: dict[str, Any]) -> None:
    doc = world["doc"]
    ident = section(doc, "identity")["fields"]
    assert ident["hostname"] == socket.gethostname()
    machine_id = Path("/etc/machine-id").read_text().strip()
    assert ident["machine_id"] == machine_id
    assert doc["identity_keys"]["machine_id"] == machine_id
    os_ = section(doc, "os")["fields"]
    assert os_["kernel"] == os.uname().release
    release = dict(line.split("=", 1) for line in
                   Path("/etc/os-release").read_text().splitlines() if "=" in line)
    assert os_["version"] == release["VERSION_ID"].strip('"')
    assert isinstance(os_["eol"], bool) or os_["eol"] is None


def test_software_is_every_installed_package(world: dict[str, Any]) -> None:
    if not Path("/usr/bin/dpkg-query").exists():
        pytest.skip("not a dpkg system")
    out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${binary:Package}\n"],
                         capture_output=True, text=True, check=True).stdout
    installed = {line.split()[1].split(":")[0] for line in out.splitlines()
                 if line[1:2] == "i"}
    names = {p["name"] for p in section(world["doc"], "software")["items"]}
    assert names == installed
    python = next(p for p in section(world["doc"], "software")["items"]
                  if p["name"] == "dpkg")
    assert python["version"] and python["arch"]


def test_listening_ports_carry_the_process_name(world: dict[str, Any]) -> None:
    ports = section(world["doc"], "ports")["items"]
    mine = [p for p in ports if p["port"] == world["secret_port"]]
    assert mine == [{"proto": "tcp", "address": "127.0.0.1", "port": world["secret_port"],
                     "process": mine[0]["process"]}]
    assert str(mine[0]["process"]).startswith("python")


def test_tls_listener_and_certificate_files(world: dict[str, Any]) -> None:
    certs = section(world["doc"], "certificates")["items"]
    by_source = {c["source"]: c for c in certs}
    port = by_source[f"tcp/{world['listener'].port}"]
    assert port["not_after"] == not_after(world["cert"])
    assert port["sha256"] == sha256(world["cert"])
    assert port["subject"] == "CN=tls.example.test"
    assert port["sans"] == ["localhost", "tls.example.test"]
    files = world["files"]
    assert by_source[str(files.soon)]["not_after"] == not_after(files.soon_cert)
    assert by_source[str(files.later)]["not_after"] == not_after(files.later_cert)
    # the port without TLS is no certificate; files without one say why
    assert f"tcp/{world['secret_port']}" not in by_source
    assert by_source[str(files.config)]["sha256"] == {
        "unavailable": "not a certificate (PEM or DER)"}
    missing = [c for c in certs if c["source"].endswith("missing.pem")]
    assert missing[0]["not_after"] == {"unavailable": "no such file"}


def test_planted_secrets_appear_nowhere(world: dict[str, Any]) -> None:
    assert_no_secrets(world["doc"])
    assert_no_secrets(world["res"].summary)


BUSYBOX_APPLETS = ("sh", "date", "id", "hostname", "cat", "grep", "uname", "stat", "sed",
                   "cut", "awk", "head", "df", "timeout", "mktemp", "rm", "tr")


def test_a_minimal_host_says_why_for_each_missing_part(tmp_path: Path) -> None:
    """A chroot holding only busybox's basic applets (no ss, netstat, dpkg-query, rpm,
    systemctl, ip, lsblk, no /proc): every category it cannot fill says why."""
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if Path(p).exists()), None)
    if busybox is None or os.geteuid() != 0:
        pytest.skip("needs busybox and root for chroot")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    # Debian's busybox is dynamically linked: its libraries come along.
    ldd = subprocess.run(["ldd", busybox], capture_output=True, text=True).stdout
    for lib in re.findall(r"(/\S+\.so[.\d]*)", ldd):
        target = root / lib.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lib, target)
    host = make_host("localhost")
    transport = LocalTransport(host)
    real_run = transport.run

    def run(command: Any, **kw: Any) -> Any:
        return real_run(["chroot", str(root), "/bin/sh", "-c", command], **kw)

    transport.run = run  # type: ignore[method-assign]
    [res] = run_check(DocsCollect, {}, host=host, transport=transport)
    doc = res.details["facts"]
    assert res.status is Status.WARN, res.summary
    assert section(doc, "ports")["unavailable"] == "not installed: ss and netstat"
    assert section(doc, "software")["unavailable"] == "not installed: dpkg-query and rpm"
    assert section(doc, "services")["unavailable"] == "not installed: systemctl"
    assert section(doc, "interfaces")["unavailable"] == "not installed: ip"
    assert section(doc, "disks")["unavailable"] == "not installed: lsblk"
    assert section(doc, "network")["unavailable"] == "not installed: ip"
    assert section(doc, "admins")["unavailable"] == "not installed: getent"
    assert section(doc, "os")["unavailable"]  # no /etc/os-release
    hardware = section(doc, "hardware")
    assert all(isinstance(v, dict) and v["unavailable"] for v in hardware["fields"].values())
    for name in ("ports", "software", "services"):
        assert name in res.summary


def test_certificate_paths_are_never_run_as_shell(tmp_path: Path) -> None:
    """A hostile path is quoted; globs are expanded only for plain glob characters."""
    marker = tmp_path / "pwned"
    (tmp_path / "a.pem").write_bytes(b"")
    cert, _ = make_cert("glob.example.test", 30)
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "cert.pem").write_bytes(pem(cert))
    hostile = f"{tmp_path}/$(touch {marker}).pem"
    res = collect({"tls_probe": False,
                   "cert_files": [hostile, f"{tmp_path}/l*/cert.pem", f"{tmp_path}/a;b.pem"]})
    assert not marker.exists()
    certs = {c["source"]: c for c in section(res.details["facts"], "certificates")["items"]}
    assert certs[hostile]["sha256"] == {"unavailable": "no such file"}
    assert certs[f"{tmp_path}/live/cert.pem"]["sha256"] == sha256(cert)
    assert certs[f"{tmp_path}/a;b.pem"]["not_after"] == {"unavailable": "no such file"}


def test_a_broken_bundle_never_sends_its_key_off_the_host(tmp_path: Path) -> None:
    """A certificate block without its END line, then the private key: what leaves the
    host (the command's whole output) holds no key material."""
    cert, key = make_cert("broken.example.test", 30)
    body = pem(cert).decode().replace("-----END CERTIFICATE-----\n", "")
    bundle = tmp_path / "broken.pem"
    bundle.write_text(body + key.decode())
    key_line = key.decode().splitlines()[1]
    host = make_host("localhost")
    wire = LocalTransport(host).run(certs.linux_script([], [str(bundle)], 3, None))
    assert "PRIVATE KEY" not in wire.stdout and key_line not in wire.stdout
    assert "BEGIN CERTIFICATE" in wire.stdout  # the certificate part did come
    res = collect({"tls_probe": False, "cert_files": [str(bundle)]})
    [item] = section(res.details["facts"], "certificates")["items"]
    assert item["sha256"] == {"unavailable": "no certificate"}


def test_a_file_named_twice_is_listed_once(tmp_path: Path) -> None:
    """A path given and also matched by a glob (`[x.pem, "*.pem"]`) is one certificate."""
    cert, _ = make_cert("twice.example.test", 30)
    (tmp_path / "x.pem").write_bytes(pem(cert))
    res = collect({"tls_probe": False,
                   "cert_files": [str(tmp_path / "x.pem"), f"{tmp_path}/*.pem"]})
    items = section(res.details["facts"], "certificates")["items"]
    assert [(c["source"], c["sha256"]) for c in items] == [
        (str(tmp_path / "x.pem"), sha256(cert))]
