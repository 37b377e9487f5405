"""The Linux parsers from captured-style script output: RHEL 7 as root (old ss that
refuses -H, rpm with epochs and signing keys) and SLES 15 as a user (netstat, no lscpu,
root-only DMI, DHCP lease)."""

from __future__ import annotations

from typing import Any

from upkeeper_docs import eol
from upkeeper_docs import linux_parsers as lp
from upkeeper_docs.facts import Section, document, tally
from upkeeper_docs.linux import Output, collect_sections

from .helpers import DATA


def sections(name: str, edit: tuple[str, str] = ("", "")) -> dict[str, dict[str, Any]]:
    out = (DATA / f"{name}.out").read_text().replace(*edit)
    err = (DATA / f"{name}.err").read_text()
    parsed = Output(out, err, root=out.split("@@upk-docs:uid\n")[1].startswith("0\n"))
    secs = collect_sections(parsed, "ssh: ", 1764979200.0)
    doc = document("h", "linux", [*secs, Section("certificates", "x"),
                                  Section("backups", "x")], 1764979200.0)
    return doc["sections"] | {"_keys": doc["identity_keys"], "_tally": tally(doc)}


def test_rhel7_as_root() -> None:
    s = sections("rhel7_collect_sudo")
    ident = s["identity"]["fields"]
    assert ident["smbios_uuid"] == "4223a1b2-c3d4-e5f6-0718-293a4b5c6d7e"
    assert ident["serial"].startswith("VMware-42 23")
    assert (ident["virtual"], ident["hypervisor"]) == (True, "vmware")
    assert (ident["hostname"], ident["fqdn"]) == ("db01", "db01.corp.example.com")
    assert s["_keys"] == {"machine_id": "5f0c2a7e9b1d4c3e8a6f7b2d1c0e9f8a",
                          "smbios_uuid": "4223a1b2-c3d4-e5f6-0718-293a4b5c6d7e",
                          "serial": ident["serial"]}
    os_ = s["os"]["fields"]
    assert (os_["version"], os_["eol"], os_["eol_date"]) == ("7.9", True, "2024-06-30")
    assert os_["install_date"] == "2019-09-11T12:53:41Z"
    assert os_["uptime_seconds"] == 3802217
    assert os_["last_boot"] == "2025-10-22T23:49:42Z"
    hw = s["hardware"]["fields"]
    assert (hw["cpu_cores"], hw["cpu_threads"]) == (4, 4)
    assert hw["ram_bytes"] == 16266500 * 1024 and hw["ram_free_bytes"] == 9833216 * 1024
    assert [d["name"] for d in s["disks"]["items"]] == ["sda", "sdb"]  # not the CD drive
    assert s["disks"]["items"][0]["model"] == "Virtual disk"
    mounts = {f["mount"]: f for f in s["filesystems"]["items"]}
    assert set(mounts) == {"/", "/boot", "/var/lib/pgsql", "/mnt/backup share"}
    assert mounts["/mnt/backup share"]["fstype"] == "cifs"
    ifaces = {i["name"]: i for i in s["interfaces"]["items"]}
    assert ifaces["ens192"]["dhcp"] is False and ifaces["ens224"]["dhcp"] is True
    assert ifaces["ens192"]["addresses"] == ["10.20.30.41/24", "fe80::250:56ff:fe9a:3b7c/64"]
    assert s["network"]["fields"] == {"default_gateway": "10.20.30.1",
                                      "dns_servers": ["10.20.30.10", "10.20.30.11"]}
    ports = {(p["proto"], p["address"], p["port"]): p["process"] for p in s["ports"]["items"]}
    assert ports == {("tcp", "*", 22): "sshd", ("tcp", "::", 22): "sshd",
                     ("tcp", "127.0.0.1", 25): "master", ("tcp", "*", 5432): "postmaster",
                     ("tcp", "*", 443): "nginx", ("udp", "127.0.0.1", 323): "chronyd",
                     ("udp", "::1", 323): "chronyd"}
    soft = {(p["name"], p["arch"]): p["version"] for p in s["software"]["items"]}
    assert soft[("nginx", "x86_64")] == "1:1.20.1-10.el7"
    assert ("glibc", "i686") in soft and ("glibc", "x86_64") in soft
    assert not any(name == "gpg-pubkey" for name, _ in soft)
    assert s["software"]["source"] == "ssh: rpm -qa"
    services = {x["name"]: x for x in s["services"]["items"]}
    assert services["nginx"] == {"name": "nginx", "enabled": True, "running": True}
    assert services["tuned"] == {"name": "tuned", "enabled": False, "running": False}
    assert services["getty@tty1"]["enabled"] is True  # from its template
    assert "getty@" not in services
    assert s["admins"]["items"] == [{"name": "jdoe", "group": "wheel"},
                                    {"name": "ops", "group": "wheel"}]
    ok, failed, not_applicable = s["_tally"]
    assert ok == 13  # all but roles (certificates and backups: stand-ins here)
    assert failed == [] and not_applicable == ["roles"]


def test_sles15_as_a_user() -> None:
    s = sections("sles15_collect_user")
    ident = s["identity"]["fields"]
    assert ident["smbios_uuid"] == {
        "unavailable": "SMBIOS UUID is readable only by root (set sudo: true)"}
    assert ident["serial"]["unavailable"].startswith("SMBIOS serial number is readable only")
    assert (ident["manufacturer"], ident["virtual"], ident["hypervisor"]) == (
        "QEMU", True, "kvm")
    assert s["_keys"] == {"machine_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9"}
    os_ = s["os"]["fields"]
    assert (os_["name"], os_["version"], os_["eol"], os_["eol_date"]) == (
        "SUSE Linux Enterprise Server 15 SP5", "15.5", True, "2024-12-31")  # the SP's end
    hw = s["hardware"]["fields"]  # no lscpu: /proc/cpuinfo without topology
    assert hw["cpu_model"] == "QEMU Virtual CPU version 2.5+" and hw["cpu_threads"] == 2
    assert hw["cpu_cores"] == {"unavailable": "core topology not reported"}
    assert hw["ram_free_bytes"] == 1012345 * 1024  # MemFree when MemAvailable is missing
    assert s["disks"]["items"][0]["serial"] == {
        "unavailable": "disk serial is readable only by root (set sudo: true)"}
    assert [f["mount"] for f in s["filesystems"]["items"]] == ["/", "/boot/efi", "/home"]
    ifaces = {i["name"]: i for i in s["interfaces"]["items"]}
    assert set(ifaces) == {"eth0", "br0.100"}  # no lo, no container veth
    assert ifaces["eth0"]["dhcp"] is True and ifaces["eth0"]["mac"] == "52:54:00:12:34:56"
    assert ifaces["br0.100"]["dhcp"] == {"unavailable": "no IPv4 address"}
    ports = {(p["proto"], p["address"], p["port"]): p["process"] for p in s["ports"]["items"]}
    root_only = {"unavailable": "the owning process is readable only by root (set sudo: true)"}
    assert ports == {("tcp", "0.0.0.0", 22): root_only, ("tcp", "::", 22): root_only,
                     ("tcp", "0.0.0.0", 8443): "java", ("udp", "0.0.0.0", 68): root_only}
    soft = {p["name"]: p for p in s["software"]["items"]}
    assert soft["kernel-default"]["version"] == \
        "5.14.21-150500.55.62.1, 5.14.21-150500.55.65.1"
    services = {x["name"]: x for x in s["services"]["items"]}
    assert services["app"] == {"name": "app", "enabled": True, "running": False}
    assert services["wicked"]["running"] is False  # active (exited) is not running
    assert s["admins"]["items"] == []
    assert s["admins"]["unavailable"] is None


def test_ss_without_header_and_netstat() -> None:
    text = ("tcp LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:* users:((\"systemd-resolve\","
            "pid=501,fd=14))\n"
            "tcp LISTEN 0 128 [::ffff:127.0.0.1]:8080 *:* users:((\"java\",pid=9,fd=1))\n"
            "udp UNCONN 0 0 *:5353 *:*\n"
            "udp UNCONN 0 0 [fe80::5054:ff:fe12:3456]%eth0:123 [::]:*\n")
    assert lp.parse_ss(text) == [
        {"proto": "tcp", "address": "127.0.0.53", "port": 53, "process": "systemd-resolve"},
        {"proto": "tcp", "address": "::ffff:127.0.0.1", "port": 8080, "process": "java"},
        {"proto": "udp", "address": "fe80::5054:ff:fe12:3456", "port": 123, "process": None},
        {"proto": "udp", "address": "*", "port": 5353, "process": None}]


def test_df_joins_a_wrapped_device_line() -> None:
    text = ("Filesystem           1K-blocks      Used Available Use% Mounted on\n"
            "/dev/mapper/vg_datastore01-lv_very_long_logical_volume_name\n"
            "                       1038336    238568    799768  23% /srv/data\n")
    assert lp.parse_df(text) == [{"mount": "/srv/data", "device":
                                  "/dev/mapper/vg_datastore01-lv_very_long_logical_volume_name",
                                  "fstype": None, "size_bytes": 1038336 * 1024,
                                  "used_bytes": 238568 * 1024, "free_bytes": 799768 * 1024}]


def test_dpkg_multiarch_and_removed_packages() -> None:
    text = ("ii \tlibc6:amd64\t2.36-9+deb12u4\tamd64\n"
            "ii \tlibc6:i386\t2.36-9+deb12u4\ti386\n"
            "rc \told-tool\t1.0-1\tamd64\n"
            "hi \tnginx\t1.22.1-9\tamd64\n")
    assert lp.parse_dpkg(text) == [
        {"name": "libc6", "version": "2.36-9+deb12u4", "arch": "amd64"},
        {"name": "libc6", "version": "2.36-9+deb12u4", "arch": "i386"},
        {"name": "nginx", "version": "1.22.1-9", "arch": "amd64"}]


def test_eol_table_is_dated_and_knows_the_families() -> None:
    assert eol.reviewed() >= "2026-01-01"
    assert eol.lookup("rocky", "9.4").date_field() == "2032-05-31"
    assert eol.lookup("ubuntu", "22.04").eol(1764979200.0) is False
    assert eol.lookup("ubuntu", "23.10").eol() is None
    assert eol.lookup("windows", "17763").date_field() == "2029-01-09"
    assert eol.lookup("sles", "15.7").date_field() == "2031-07-31"
    assert eol.lookup("sles", "15.9").date_field() == "2031-07-31"  # the major's
    assert eol.lookup("opensuse-leap", "15.6").date_field()["unavailable"].startswith(
        "opensuse-leap is not in the EOL table")


def test_a_command_that_timed_out_fails_its_section_not_half_of_it() -> None:
    """rpm stuck on a lock, killed by the script's time limit after some lines: the list
    is not taken as complete (that would read as removed packages)."""
    s = sections("rhel7_collect_sudo", ("nginx\t1:1.20.1-10.el7\tx86_64\n",
                                        "!timed out after 60s: rpm\n"))
    assert s["software"]["unavailable"] == "timed out after 60s: rpm"
    assert s["software"]["items"] == []
    s = sections("rhel7_collect_sudo", ("@@upk-docs:units\n",
                                        "@@upk-docs:units\n!timed out after 10s: systemctl\n"))
    assert {x["running"]["unavailable"] for x in s["services"]["items"]} == {
        "systemctl list-units failed: timed out after 10s: systemctl"}


def test_a_script_cut_short_leaves_no_category_half_read() -> None:
    """Killed while listing packages (a timeout): what finished is kept, the rest says
    why; the last package lines that did arrive are not taken as the whole list."""
    text = (DATA / "rhel7_collect_sudo.out").read_text()
    cut = text[:text.index("openssl\t")]
    out = Output(cut, "", root=True)
    secs = {s.name: s for s in collect_sections(out, "ssh: ", 0.0, "timed out after 180s")}
    assert secs["ports"].reason is None and secs["ports"].items
    for name in ("software", "services", "admins"):
        assert secs[name].reason == "the collection script stopped before it: timed out " \
                                    "after 180s", name
        assert secs[name].items == []


def test_dns_behind_the_systemd_resolved_stub_is_the_upstreams() -> None:
    s = sections("rhel7_collect_sudo", (
        "nameserver 10.20.30.10\nnameserver 10.20.30.11\n",
        "nameserver 127.0.0.53\nupstream nameserver 192.0.2.53\n"
        "upstream nameserver 192.0.2.54\n"))
    assert s["network"]["fields"]["dns_servers"] == ["192.0.2.53", "192.0.2.54"]
