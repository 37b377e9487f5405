"""Windows collection: one PowerShell 5.1 script over WinRM (ConvertTo-Json), parsed by
pure functions that accept PS 5.1's shapes: lone objects for lists, ``/Date(ms)/`` and
``{"value": ..., "DateTime": ...}`` dates, enums as numbers."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from upkeeper import CheckContext
from upkeeper.powershell import (
    PowerShellError,
    as_list,
    enum_name,
    parse_ps_date,
    run_powershell_json,
)
from upkeeper_docs import certs, eol
from upkeeper_docs.facts import NOT_APPLICABLE, Section, iso, short, unavailable

SCRIPT = r"""
$r = [ordered]@{}
function Sec([string]$name, [scriptblock]$body) {
  try { $r[$name] = @(& $body) } catch { $r[$name] = @{ error = $_.Exception.Message } }
}
Sec now { [DateTimeOffset]::UtcNow.ToUnixTimeSeconds() }
Sec os { Get-CimInstance Win32_OperatingSystem | Select-Object Caption, Version,
  BuildNumber, ProductType, InstallDate, LastBootUpTime, FreePhysicalMemory, CSName }
Sec cs { Get-CimInstance Win32_ComputerSystem | Select-Object DNSHostName, Domain,
  PartOfDomain, Manufacturer, Model, HypervisorPresent, TotalPhysicalMemory }
Sec product { Get-CimInstance Win32_ComputerSystemProduct | Select-Object UUID,
  IdentifyingNumber }
Sec bios { Get-CimInstance Win32_BIOS | Select-Object SerialNumber }
Sec guid { (Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Cryptography').MachineGuid }
Sec cpu { Get-CimInstance Win32_Processor | Select-Object Name, NumberOfCores,
  NumberOfLogicalProcessors }
Sec disks { Get-CimInstance Win32_DiskDrive | Select-Object Index, Model, SerialNumber, Size }
Sec volumes { Get-CimInstance Win32_LogicalDisk -Filter 'DriveType=3' |
  Select-Object DeviceID, FileSystem, Size, FreeSpace }
Sec adapters { Get-NetAdapter | Select-Object Name, InterfaceIndex, MacAddress }
Sec addresses { Get-NetIPAddress | Select-Object InterfaceIndex, IPAddress, PrefixLength,
  PrefixOrigin }
Sec routes { Get-NetRoute -DestinationPrefix '0.0.0.0/0','::/0' -ErrorAction SilentlyContinue |
  Select-Object NextHop, RouteMetric }
Sec dns { Get-DnsClientServerAddress | Select-Object InterfaceIndex, ServerAddresses }
Sec processes { Get-Process | Select-Object Id, ProcessName }
Sec tcp { Get-NetTCPConnection -State Listen | Select-Object LocalAddress, LocalPort,
  OwningProcess }
Sec udp { Get-NetUDPEndpoint | Select-Object LocalAddress, LocalPort, OwningProcess }
Sec software {
  foreach ($k in @(@('HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*', 'x64'),
      @('HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*', 'x86'))) {
    Get-ItemProperty -Path $k[0] -ErrorAction SilentlyContinue | Where-Object { $_.DisplayName } |
      Select-Object DisplayName, DisplayVersion, SystemComponent, ParentKeyName,
        @{ n = 'Arch'; e = { $k[1] } }
  }
}
Sec roles {
  if (-not (Get-Command Get-WindowsFeature -ErrorAction SilentlyContinue)) {
    throw 'NA: Get-WindowsFeature is not available (not Windows Server)' }
  Get-WindowsFeature | Where-Object { $_.Installed } | Select-Object Name
}
Sec services { Get-CimInstance Win32_Service | Select-Object Name, StartMode, State }
Sec admins {
  $sid = New-Object System.Security.Principal.SecurityIdentifier('S-1-5-32-544')
  $group = $sid.Translate([System.Security.Principal.NTAccount]).Value.Split('\')[-1]
  try {
    Get-LocalGroupMember -SID 'S-1-5-32-544' -ErrorAction Stop |
      Select-Object Name, @{ n = 'Group'; e = { $group } }
  } catch {
    foreach ($m in @(([ADSI]"WinNT://./$group,group").psbase.Invoke('Members'))) {
      $path = $m.GetType().InvokeMember('AdsPath', 'GetProperty', $null, $m, $null)
      [pscustomobject]@{ Name = ($path -replace '^WinNT://', '' -replace '/', '\');
                         Group = $group }
    }
  }
}
[pscustomobject]$r
"""

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PREFIX_ORIGIN = {0: "Other", 1: "Manual", 2: "WellKnown", 3: "Dhcp", 4: "RouterAdvertisement"}
_SOURCES = {
    "identity": "Win32_ComputerSystem, Win32_ComputerSystemProduct, Win32_BIOS, "
                "HKLM Cryptography MachineGuid",
    "os": "Win32_OperatingSystem", "hardware": "Win32_Processor, Win32_OperatingSystem",
    "disks": "Win32_DiskDrive", "filesystems": "Win32_LogicalDisk (fixed)",
    "interfaces": "Get-NetAdapter, Get-NetIPAddress (PrefixOrigin Dhcp)",
    "network": "Get-NetRoute default, Get-DnsClientServerAddress",
    "ports": "Get-NetTCPConnection -State Listen, Get-NetUDPEndpoint, Get-Process names",
    "software": "registry Uninstall keys (64 and 32 bit), not Win32_Product",
    "roles": "Get-WindowsFeature (installed)", "services": "Win32_Service StartMode, State",
    "admins": "Get-LocalGroupMember -SID S-1-5-32-544 (ADSI when it fails)",
}


def collect(ctx: CheckContext[Any], at: float) -> list[Section]:
    prefix = "winrm, PowerShell: "
    try:
        data = run_powershell_json(ctx, SCRIPT, depth=5)
    except PowerShellError as exc:
        return [Section(n, prefix + s, at).fail(f"collection script failed: {exc}")
                for n, s in _SOURCES.items()]
    raw = data[0] if data and isinstance(data[0], dict) else {}
    try:
        sections = parse(raw, prefix, at)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return [Section(n, prefix + s, at).fail(
            f"unexpected output: {type(exc).__name__}: {short(str(exc))}")
            for n, s in _SOURCES.items()]
    ports = next(s for s in sections if s.name == "ports")
    sections.append(_certs(ctx, ports, prefix))
    return sections


def _certs(ctx: CheckContext[Any], ports: Section, prefix: str) -> Section:
    from upkeeper_docs.collect import fill_certs, probe_targets
    p = ctx.params
    sec = Section("certificates", prefix + "SslStream handshakes from the host to its "
                  "listening TCP ports; X509Certificate2 of cert_files; cert_stores")
    targets = probe_targets(ports, p)
    timeout = max(1, int(p.tls_timeout.total_seconds()))
    script = certs.windows_script(targets, list(p.cert_files), list(p.cert_stores), timeout,
                                  p.tls_servername)
    try:
        rows = run_powershell_json(ctx, script, timeout=timeout * (len(targets) + 2) + 30)
    except PowerShellError as exc:
        return sec.fail(f"certificate script failed: {exc}")
    parts: list[tuple[str, str]] = []
    for row in rows:
        if not isinstance(row, dict) or not row.get("source"):
            continue
        der = row.get("der")
        text = (f"-----BEGIN CERTIFICATE-----\n{der}\n-----END CERTIFICATE-----\n" if der
                else f"!{short(str(row.get('error') or 'no certificate'))}\n")
        source = str(row["source"])
        if source.startswith("tcp/") and not der:
            text = ""  # a port that does not speak TLS
        parts.append((source, text))
    return fill_certs(sec, parts, {f"tcp/{t[2]}" for t in targets})


def _first(raw: dict[str, Any], key: str) -> tuple[dict[str, Any], str | None]:
    """The first object of a section, or the section's error."""
    rows = as_list(raw.get(key))
    if rows and isinstance(rows[0], dict) and set(rows[0]) == {"error"}:
        return {}, short(str(rows[0]["error"]))
    if not rows:
        return {}, "no output"
    return (rows[0] if isinstance(rows[0], dict) else {"value": rows[0]}), None


def _rows(raw: dict[str, Any], key: str) -> tuple[list[dict[str, Any]], str | None]:
    rows = as_list(raw.get(key))
    if len(rows) == 1 and isinstance(rows[0], dict) and set(rows[0]) == {"error"}:
        return [], short(str(rows[0]["error"]))
    if key not in raw:
        return [], "not in the script's output"
    return [r for r in rows if isinstance(r, dict)], None


def ps_time(value: Any) -> datetime | None:
    """A date as PS 5.1 or 7 wrote it (already normalized, /Date/, ISO, or wrapped)."""
    if isinstance(value, dict):
        value = value.get("value", value.get("DateTime"))
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_ps_date(value)
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse(raw: dict[str, Any], prefix: str, at: float) -> list[Section]:
    """Every category but certificates and backups from the script's JSON object."""
    sec = {n: Section(n, prefix + s, at) for n, s in _SOURCES.items()}
    now_rows = as_list(raw.get("now"))
    now = float(now_rows[0]) if now_rows and isinstance(now_rows[0], (int, float)) \
        else time.time()
    os_, os_err = _first(raw, "os")
    cs, cs_err = _first(raw, "cs")
    product, _ = _first(raw, "product")
    bios, _ = _first(raw, "bios")
    guid, guid_err = _first(raw, "guid")
    if cs_err:
        sec["identity"].fail(cs_err)
    else:
        model = str(cs.get("Model") or "")
        virtual_model = any(v in model.lower() for v in ("virtual", "vmware", "kvm", "qemu",
                                                         "hvm domu"))
        serial = str(bios.get("SerialNumber") or product.get("IdentifyingNumber") or "").strip()
        uuid = str(product.get("UUID") or "").strip().lower()
        dns, domain = cs.get("DNSHostName") or os_.get("CSName"), cs.get("Domain")
        sec["identity"].fields = {
            "hostname": dns, "fqdn": f"{dns}.{domain}".lower() if dns and domain
            and cs.get("PartOfDomain") else unavailable("not joined to a domain"),
            "machine_id": str(guid.get("value") or "").lower() or unavailable(
                guid_err or "no MachineGuid"),
            "smbios_uuid": uuid if _UUID_RE.match(uuid) and set(uuid) - {"0", "-"}
            and set(uuid) - {"f", "-"} else
            unavailable("SMBIOS UUID not set"),
            "serial": serial if serial and serial.lower() not in ("0", "none",
                                                                  "to be filled by o.e.m.")
            else unavailable("SMBIOS serial not set"),
            "manufacturer": cs.get("Manufacturer"), "model": model,
            # HypervisorPresent is also true on a Hyper-V host and with VBS: not used.
            "virtual": virtual_model,
            "hypervisor": _hypervisor(str(cs.get("Manufacturer") or ""), model)
            if virtual_model else None,
        }
    if os_err:
        sec["os"].fail(os_err)
    else:
        build = str(os_.get("BuildNumber") or "")
        server = _int(os_.get("ProductType")) in (2, 3) or "server" in str(
            os_.get("Caption", "")).lower()
        life = eol.lookup("windows" if server else "windows-client", build)
        boot = ps_time(os_.get("LastBootUpTime"))
        installed = ps_time(os_.get("InstallDate"))
        sec["os"].fields = {
            "name": os_.get("Caption"), "version": os_.get("Version"), "build": build,
            "kernel": os_.get("Version"), "install_date": iso(installed),
            "last_boot": iso(boot), "uptime_seconds": round(now - boot.timestamp())
            if boot else unavailable("no LastBootUpTime"),
            "eol": life.eol(now), "eol_date": life.date_field()}
        sec["os"].source += f"; eol: {eol.SOURCE}"
    cpus, cpu_err = _rows(raw, "cpu")
    free_kb = _int(os_.get("FreePhysicalMemory"))
    sec["hardware"].fields = {
        "cpu_model": str(cpus[0].get("Name") or "").strip() if cpus else unavailable(
            cpu_err or "no processor"),
        "cpu_cores": sum(_int(c.get("NumberOfCores")) or 0 for c in cpus) or unavailable(
            cpu_err or "not reported"),
        "cpu_threads": sum(_int(c.get("NumberOfLogicalProcessors")) or 0 for c in cpus)
        or unavailable(cpu_err or "not reported"),
        "ram_bytes": _int(cs.get("TotalPhysicalMemory")) or unavailable(
            cs_err or "not reported"),
        "ram_free_bytes": free_kb * 1024 if free_kb is not None else unavailable(
            os_err or "not reported"),
        "load_1m": unavailable("Windows keeps no load average")}
    _lists(raw, sec)
    return list(sec.values())


def _hypervisor(maker: str, model: str) -> str:
    text = f"{maker} {model}".lower()
    for needle, name in (("vmware", "vmware"), ("microsoft", "hyper-v"), ("qemu", "kvm"),
                         ("kvm", "kvm"), ("xen", "xen"), ("amazon", "amazon"),
                         ("google", "google"), ("virtualbox", "oracle")):
        if needle in text:
            return name
    return "unknown"


def _lists(raw: dict[str, Any], sec: dict[str, Section]) -> None:
    def rows(key: str, target: str) -> list[dict[str, Any]] | None:
        found, err = _rows(raw, key)
        if err:
            if err.startswith("NA: "):
                sec[target].fail(f"{NOT_APPLICABLE}: {err[4:]}")
            else:
                sec[target].fail(err)
            return None
        return found

    if (disks := rows("disks", "disks")) is not None:
        sec["disks"].items = sorted((
            {"name": f"PhysicalDrive{d.get('Index')}", "model": d.get("Model") or unavailable(
                "not reported"), "serial": str(d.get("SerialNumber") or "").strip()
             or unavailable("not reported"), "size_bytes": _int(d.get("Size"))}
            for d in disks), key=lambda d: d["name"])
    if (vols := rows("volumes", "filesystems")) is not None:
        sec["filesystems"].items = sorted((
            {"mount": v.get("DeviceID"), "device": v.get("DeviceID"),
             "fstype": v.get("FileSystem") or unavailable("unformatted"),
             "size_bytes": _int(v.get("Size")),
             "used_bytes": (_int(v.get("Size")) or 0) - (_int(v.get("FreeSpace")) or 0),
             "free_bytes": _int(v.get("FreeSpace"))} for v in vols),
            key=lambda v: str(v["mount"]))
    adapters, addresses = rows("adapters", "interfaces"), rows("addresses", "interfaces")
    if adapters is not None and addresses is not None:
        by_index: dict[Any, list[dict[str, Any]]] = {}
        for a in addresses:
            by_index.setdefault(a.get("InterfaceIndex"), []).append(a)
        for ad in adapters:
            mine = by_index.get(ad.get("InterfaceIndex"), [])
            v4 = [a for a in mine if ":" not in str(a.get("IPAddress"))]
            sec["interfaces"].items.append({
                "name": ad.get("Name"),
                "mac": str(ad.get("MacAddress") or "").replace("-", ":").lower()
                or unavailable("no hardware address"),
                "addresses": sorted(f"{a.get('IPAddress')}/{a.get('PrefixLength')}"
                                    for a in mine),
                "dhcp": any(enum_name(a.get("PrefixOrigin"), _PREFIX_ORIGIN) == "Dhcp"
                            for a in v4) if v4 else unavailable("no IPv4 address")})
        sec["interfaces"].items.sort(key=lambda i: str(i["name"]))
    routes = rows("routes", "network")
    dns = rows("dns", "network")
    if routes is not None and dns is not None:
        best = sorted(routes, key=lambda r: _int(r.get("RouteMetric")) or 0)
        gateways = [str(r.get("NextHop")) for r in best if r.get("NextHop") not in
                    (None, "0.0.0.0", "::")]
        servers: list[str] = []
        truncated = False
        for row in dns:
            found = as_list(row.get("ServerAddresses"))
            # ConvertTo-Json past its -Depth writes a list as its type name.
            truncated |= any(str(s).startswith("System.") for s in found)
            servers += [str(s) for s in found
                        if s not in servers and not str(s).startswith("System.")]
        sec["network"].fields = {
            "default_gateway": gateways[0] if gateways else unavailable("no default route"),
            "dns_servers": servers or unavailable(
                "cut off by ConvertTo-Json -Depth" if truncated else
                "no DNS servers configured")}
    _ports(raw, sec, rows)
    if (soft := rows("software", "software")) is not None:
        seen = {}
        for s in soft:
            if _int(s.get("SystemComponent")) == 1 or s.get("ParentKeyName"):
                continue  # hidden components and updates of another product
            item = {"name": str(s.get("DisplayName")).strip(),
                    "version": s.get("DisplayVersion") or unavailable("no DisplayVersion"),
                    "arch": s.get("Arch")}
            seen[(item["name"], item["arch"])] = item
        sec["software"].items = [seen[k] for k in sorted(seen, key=str)]
    if (roles := rows("roles", "roles")) is not None:
        sec["roles"].items = sorted(({"name": r.get("Name")} for r in roles),
                                    key=lambda r: str(r["name"]))
    if (services := rows("services", "services")) is not None:
        sec["services"].items = sorted((
            {"name": s.get("Name"), "enabled": str(s.get("StartMode")).lower() in ("auto",
                                                                                    "boot",
                                                                                    "system"),
             "running": str(s.get("State")).lower() == "running"} for s in services),
            key=lambda s: str(s["name"]).lower())
    if (admins := rows("admins", "admins")) is not None:
        sec["admins"].items = sorted(({"name": a.get("Name"), "group": a.get("Group")}
                                      for a in admins), key=lambda a: str(a["name"]).lower())


def _ports(raw: dict[str, Any], sec: dict[str, Section], rows: Any) -> None:
    procs = rows("processes", "ports")
    tcp, udp = rows("tcp", "ports"), rows("udp", "ports")
    if procs is None or tcp is None or udp is None:
        return
    names = {_int(p.get("Id")): p.get("ProcessName") for p in procs}
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    for proto, table in (("tcp", tcp), ("udp", udp)):
        for row in table:
            port = _int(row.get("LocalPort"))
            if port is None:
                continue
            address = str(row.get("LocalAddress") or "*")
            pid = _int(row.get("OwningProcess"))
            found[(proto, address, port)] = {
                "proto": proto, "address": address, "port": port,
                "process": names.get(pid) or ("System" if pid == 4 else unavailable(
                    f"process {pid} has exited or is not visible"))}
    sec["ports"].items = [found[k] for k in sorted(found, key=lambda k: (k[0], k[2], k[1]))]
