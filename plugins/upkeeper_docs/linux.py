"""Linux collection: one shell script (``collect_linux.sh``), split into sections by its
markers and turned into the document's sections by the pure parsers."""

from __future__ import annotations

import re
import time
from importlib import resources
from typing import Any

from upkeeper_docs import eol
from upkeeper_docs import linux_parsers as lp
from upkeeper_docs.facts import NOT_APPLICABLE, Section, iso, short, unavailable

_MARK_RE = re.compile(r"^@@upk-docs:(\w+)$", re.M)


def script() -> str:
    return resources.files("upkeeper_docs").joinpath("collect_linux.sh").read_text("utf-8")


def split_sections(text: str) -> dict[str, str]:
    """Marker name -> the text after it (up to the next marker)."""
    parts = _MARK_RE.split(text)
    return {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}


class Output:
    """The script's stdout and stderr, by section."""

    def __init__(self, stdout: str, stderr: str, root: bool) -> None:
        self.out = split_sections(stdout)
        self.err = split_sections(stderr)
        self.root = root

    def text(self, name: str) -> str:
        return self.out.get(name, "")

    def missing(self, name: str) -> str | None:
        """The script's own ``!reason`` line, if it printed one."""
        for line in self.text(name).splitlines():
            if line.startswith("!"):
                return line[1:].replace("missing ", "not installed: ")
        return None

    def why(self, name: str, default: str) -> str:
        """Why a section came out empty: the script's reason, else its last error line."""
        own = self.missing(name)
        if own:
            return own
        errs = [ln for ln in self.err.get(name, "").splitlines() if ln.strip()]
        return short(errs[-1]) if errs else default


#: How each category is collected (the script's commands), for the section's ``source``.
SOURCES = {
    "identity": "hostname, hostname -f, /etc/machine-id, /sys/class/dmi/id, "
                "systemd-detect-virt",
    "os": "/etc/os-release, uname -r, /proc/uptime, rpm -q basesystem / stat /",
    "hardware": "lscpu, /proc/cpuinfo, /proc/meminfo, /proc/loadavg",
    "disks": "lsblk -d -b -P", "filesystems": "df -PkT",
    "interfaces": "ip -o link, ip -o addr", "network": "ip route show default, "
    "/etc/resolv.conf nameserver lines (systemd-resolved upstreams when stubbed)",
    "ports": "ss -tulpn (process names only)", "software": "dpkg-query -W / rpm -qa",
    "services": "systemctl list-unit-files, systemctl list-units",
    "admins": "getent group", "roles": "-",
}


#: The marker that follows a category's last section: seen, the category's output is whole.
DONE_AFTER = {"identity": "os_release", "os": "lscpu", "hardware": "lsblk", "disks": "df",
              "filesystems": "links", "interfaces": "routes", "network": "ports",
              "ports": "software", "software": "unit_files", "services": "admins",
              "admins": "end"}


def collect_sections(out: Output, prefix: str, at: float,
                     stopped: str = "") -> list[Section]:
    """Every category but certificates and backups (the check adds those); ``prefix``
    says how the script ran (``ssh, sudo: ``). A category the script did not finish
    (it was killed, or ``stopped`` says why it ended early) is unavailable, never half
    read."""
    builders = (_identity, _os, _hardware, _disks, _filesystems, _interfaces, _network,
                _ports, _software, _services, _admins)
    sections = []
    for build in builders:
        name = build.__name__.lstrip("_")
        sec = Section(name, prefix + SOURCES[name], at)
        if DONE_AFTER[name] not in out.out:
            sections.append(sec.fail(f"the collection script stopped before it: "
                                     f"{stopped or 'no output'}"))
            continue
        try:
            build(out, sec)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            sec.fail(f"unexpected output: {type(exc).__name__}: {exc}")
        sections.append(sec)
    sections.append(Section("roles", prefix + SOURCES["roles"], at).fail(
        f"{NOT_APPLICABLE}: roles and features are Windows Server's"))
    return sections


def _root_only(out: Output, what: str) -> dict[str, str]:
    return unavailable(f"{what} is readable only by root (set sudo: true)" if not out.root
                       else f"{what} is not readable")


def _identity(out: Output, sec: Section) -> None:
    dmi_text = out.text("dmi")
    dmi = lp.parse_key_values(dmi_text)
    unreadable = {ln.split("!")[0] for ln in dmi_text.splitlines() if ln.endswith("!unreadable")}

    def dmi_value(key: str, what: str) -> Any:
        value = dmi.get(key, "").strip()
        if value and value.lower() not in _DMI_PLACEHOLDERS:
            return value.lower() if key == "product_uuid" else value
        if "!nodmi" in dmi_text:
            return unavailable("no SMBIOS/DMI table (a container, or not x86/UEFI)")
        if key in unreadable:
            return _root_only(out, what)
        return unavailable(f"{what} is not set in SMBIOS")

    hostname = out.text("hostname").strip().splitlines()
    fqdn = out.text("fqdn").strip().splitlines()
    machine_id = out.text("machine_id").strip()
    virt = _virtualisation(out.text("virt"), dmi)
    # RHEL often sets the static host name to the FQDN: the host name is its first label.
    full = hostname[0].strip() if hostname else ""
    if out.missing("fqdn"):
        fqdn_value: Any = unavailable(out.why("fqdn", ""))
    elif fqdn and "." in fqdn[0]:
        fqdn_value = fqdn[0].strip()
    elif "." in full:
        fqdn_value = full
    else:
        fqdn_value = unavailable("no domain name resolves for the host name" if fqdn else
                                 out.why("fqdn", "hostname -f failed"))
    sec.fields = {
        "hostname": full.split(".")[0] if full else unavailable(
            out.why("hostname", "no output")),
        "fqdn": fqdn_value,
        "machine_id": machine_id if re.fullmatch(r"[0-9a-f]{32}", machine_id) else
        unavailable(out.why("machine_id", "/etc/machine-id is missing or empty")),
        "smbios_uuid": dmi_value("product_uuid", "SMBIOS UUID"),
        "serial": dmi_value("product_serial", "SMBIOS serial number"),
        "manufacturer": dmi_value("sys_vendor", "manufacturer"),
        "model": dmi_value("product_name", "model"),
        "virtual": virt[0] if virt[0] is not None else unavailable(
            "cannot tell (no systemd-detect-virt, no DMI, no cpu hypervisor flag)"),
        "hypervisor": virt[1],
    }


_DMI_PLACEHOLDERS = {"", "none", "not specified", "to be filled by o.e.m.", "default string",
                     "system serial number", "0", "00000000-0000-0000-0000-000000000000",
                     "03000200-0400-0500-0006-000700080009"}
_HYPERVISOR_VENDORS = (("vmware", "vmware"), ("qemu", "kvm"), ("kvm", "kvm"),
                       ("microsoft corporation", "microsoft"), ("xen", "xen"),
                       ("innotek", "oracle"), ("virtualbox", "oracle"), ("parallels", "parallels"),
                       ("amazon ec2", "amazon"), ("google", "google"), ("openstack", "openstack"),
                       ("bochs", "bochs"))


def _virtualisation(text: str, dmi: dict[str, str]) -> tuple[bool | None, str | None]:
    kv = lp.parse_key_values(text)
    detect = kv.get("detect", "").strip()
    if detect and detect != "none":
        return True, detect
    vendor = f"{dmi.get('sys_vendor', '')} {dmi.get('product_name', '')}".lower()
    for needle, name in _HYPERVISOR_VENDORS:
        if needle in vendor and not (needle == "microsoft corporation"
                                     and "virtual" not in vendor):
            return True, name
    if kv.get("cpuflag") or kv.get("xen"):
        return True, "xen" if kv.get("xen") else "unknown"
    if detect == "none" or dmi.get("sys_vendor"):
        return False, None
    return None, None


def _os(out: Output, sec: Section) -> None:
    rel = lp.parse_key_values(out.text("os_release"))
    if not rel:
        sec.fail(out.why("os_release", "no /etc/os-release"))
        return
    now = _num(out.text("now")) or time.time()
    uptime = _num(out.text("uptime").split(" ")[0] if out.text("uptime") else "")
    install = lp.parse_key_values(out.text("install"))
    installed = next((int(v) for k in ("rpm", "birth", "installer")
                      if (v := install.get(k, "")).isdigit() and int(v) > 0), None)
    life = eol.lookup(rel.get("ID", ""), rel.get("VERSION_ID", ""), rel.get("ID_LIKE", ""))
    sec.fields = {
        "name": rel.get("PRETTY_NAME") or rel.get("NAME"),
        "version": rel.get("VERSION_ID") or unavailable("os-release has no VERSION_ID"),
        "build": rel.get("VERSION") or unavailable("os-release has no VERSION"),
        "kernel": out.text("kernel").strip() or unavailable(out.why("kernel", "uname failed")),
        "install_date": iso(installed) if installed else unavailable(
            "no install record (rpm basesystem, root filesystem birth time, installer log)"),
        "last_boot": iso(now - uptime) if uptime is not None else unavailable(
            out.why("uptime", "/proc/uptime unreadable")),
        "uptime_seconds": round(uptime) if uptime is not None else unavailable(
            out.why("uptime", "/proc/uptime unreadable")),
        "eol": life.eol(now), "eol_date": life.date_field(),
    }
    sec.source += f"; eol: {eol.SOURCE}"


def _hardware(out: Output, sec: Section) -> None:
    cpu = lp.parse_lscpu(out.text("lscpu")) if out.text("lscpu") else {}
    fallback = lp.parse_cpuinfo(out.text("cpuinfo"))
    for key, value in fallback.items():
        if not cpu.get(key):
            cpu[key] = value
    mem = lp.parse_meminfo(out.text("meminfo"))
    load = out.text("loadavg").split()
    nothing = not out.text("lscpu").strip() and not out.text("cpuinfo").strip()
    why = out.why("cpuinfo", "no CPU information") if nothing else ""
    sec.fields = {
        "cpu_model": cpu.get("cpu_model") or unavailable(
            why or "the CPU does not report a model"),
        "cpu_cores": cpu.get("cpu_cores") or unavailable(why or "core topology not reported"),
        "cpu_threads": cpu.get("cpu_threads") or unavailable(why or "no CPUs listed"),
        "ram_bytes": mem.get("MemTotal") or unavailable("/proc/meminfo unreadable"),
        "ram_free_bytes": mem.get("MemAvailable", mem.get("MemFree"))
        if mem else unavailable("/proc/meminfo unreadable"),
        "load_1m": float(load[0]) if load else unavailable("/proc/loadavg unreadable"),
    }


def _disks(out: Output, sec: Section) -> None:
    if out.missing("lsblk"):
        sec.fail(out.why("lsblk", ""))
        return
    sec.items = sorted(lp.parse_lsblk_pairs(out.text("lsblk")), key=lambda d: d["name"])
    for disk in sec.items:
        if disk["serial"] is None:
            disk["serial"] = (unavailable("serial not reported by the device") if out.root
                              else _root_only(out, "disk serial"))
        if disk["model"] is None:
            disk["model"] = unavailable("model not reported by the device")


def _filesystems(out: Output, sec: Section) -> None:
    if out.missing("df"):
        sec.fail(out.why("df", ""))
        return
    rows = lp.parse_df(out.text("df"))
    if not rows:
        sec.fail(out.why("df", "df printed no filesystems"))
    sec.items = rows
    for row in rows:
        if not row["fstype"]:
            row["fstype"] = unavailable("df cannot print types (-T)")


def _interfaces(out: Output, sec: Section) -> None:
    if out.missing("links"):
        sec.fail(out.why("links", ""))
        return
    macs = lp.parse_ip_link(out.text("links"))
    addrs = lp.parse_ip_addr(out.text("addrs"))
    for name in sorted(set(macs) | set(addrs)):
        # Container veth pairs come and go with every container start: not structure.
        if name == "lo" or name.startswith("veth"):
            continue
        entry = addrs.get(name, {"addresses": [], "dynamic4": False})
        has_v4 = any(":" not in a for a in entry["addresses"])
        sec.items.append({
            "name": name, "mac": macs.get(name) or unavailable("no hardware address"),
            "addresses": sorted(entry["addresses"]),
            "dhcp": entry["dynamic4"] if has_v4 else unavailable("no IPv4 address")})
    sec.source += ("; dhcp: an IPv4 address with a lease lifetime (ip 'dynamic'); "
                   "lo and container veth pairs left out")


def _network(out: Output, sec: Section) -> None:
    if out.missing("links"):
        sec.fail(out.why("links", ""))
        return
    gateways = lp.parse_default_routes(out.text("routes"))
    dns_text = out.text("dns")
    upstream = lp.parse_nameservers("\n".join(
        ln.removeprefix("upstream ") for ln in dns_text.splitlines()
        if ln.startswith("upstream ")))
    local = lp.parse_nameservers("\n".join(
        ln for ln in dns_text.splitlines() if not ln.startswith("upstream ")))
    servers = upstream or local
    sec.fields = {
        "default_gateway": gateways[0] if gateways else unavailable("no default route"),
        "dns_servers": servers or unavailable("no nameserver in /etc/resolv.conf"),
    }


def _ports(out: Output, sec: Section) -> None:
    if out.missing("ports"):
        sec.fail(out.why("ports", ""))
        return
    sec.items = lp.parse_ss(out.text("ports"))
    for item in sec.items:
        if item["process"] is None:
            item["process"] = (_root_only(out, "the owning process") if not out.root
                               else unavailable("no process owns it (kernel socket)"))


def _software(out: Output, sec: Section) -> None:
    text = out.text("software")
    if out.missing("software"):
        sec.fail(out.missing("software") or "")
    elif text.startswith("#dpkg"):
        sec.items = lp.parse_dpkg(text)
        sec.source = sec.source.replace("dpkg-query -W / rpm -qa", "dpkg-query -W")
    elif text.startswith("#rpm"):
        sec.items = lp.parse_rpm(text)
        sec.source = sec.source.replace("dpkg-query -W / rpm -qa", "rpm -qa")
    if not sec.items and not sec.reason:
        sec.fail(out.why("software", "the package manager listed nothing"))


def _services(out: Output, sec: Section) -> None:
    if out.missing("unit_files"):
        sec.fail(out.why("unit_files", ""))
        return
    units = out.text("units")
    running_known = bool(units.strip()) and not out.missing("units")
    sec.items = lp.parse_systemctl(out.text("unit_files"), units if running_known else None)
    if not running_known:
        reason = out.why("units", "systemd is not running")
        for item in sec.items:
            item["running"] = unavailable(f"systemctl list-units failed: {reason}")
    if not sec.items:
        sec.fail(out.why("unit_files", "systemctl listed no services"))


def _admins(out: Output, sec: Section) -> None:
    if out.missing("admins"):
        sec.fail(out.why("admins", ""))
        return
    sec.items = lp.parse_admin_groups(out.text("admins"))
    sec.source += " sudo wheel admin (members and primary-group users)"


def _num(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None
