"""Windows host facts: one PowerShell/CIM script and a pure parser for its JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from upkeeper.powershell import as_list

FACTS_SCRIPT = """\
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$cs = Get-CimInstance -ClassName Win32_ComputerSystem
$id = [Security.Principal.WindowsIdentity]::GetCurrent()
$admin = ([Security.Principal.WindowsPrincipal]$id).IsInRole(
    [Security.Principal.WindowsBuiltInRole]::Administrator)
[pscustomobject]@{
    Caption = $os.Caption
    Version = $os.Version
    BuildNumber = $os.BuildNumber
    OSArchitecture = $os.OSArchitecture
    ProductType = $os.ProductType
    LastBootUpTime = $os.LastBootUpTime
    CSName = $env:COMPUTERNAME
    DNSHostName = $cs.DNSHostName
    Domain = $cs.Domain
    PartOfDomain = $cs.PartOfDomain
    User = $id.Name
    IsAdmin = $admin
    PSVersion = $PSVersionTable.PSVersion.ToString()
}
"""

_PRODUCT_TYPES = {1: "workstation", 2: "domain_controller", 3: "server"}


def parse_windows_facts(data: Any) -> dict[str, Any]:
    """Facts from the (already JSON-decoded) output of :data:`FACTS_SCRIPT`.

    Keys follow the POSIX facts where they mean the same (``os_family``, ``distro``,
    ``distro_version``, ``hostname``, ``arch``, ``is_root``) plus Windows ones
    (``os_caption``, ``os_version``, ``os_build``, ``domain``, ``fqdn``, ``product_type``,
    ``last_boot``, ``ps_version``). Missing fields become ``None``.
    """
    items = as_list(data)
    raw: dict[str, Any] = items[0] if items and isinstance(items[0], dict) else {}
    caption = _text(raw.get("Caption"))
    hostname = _text(raw.get("CSName")) or _text(raw.get("DNSHostName"))
    domain = _text(raw.get("Domain")) if raw.get("PartOfDomain") else None
    dns = _text(raw.get("DNSHostName")) or hostname
    fqdn = f"{dns}.{domain}".lower() if dns and domain else (dns.lower() if dns else None)
    build = _text(raw.get("BuildNumber"))
    boot = raw.get("LastBootUpTime")
    product = raw.get("ProductType")
    return {
        "os_family": "windows",
        "distro": "windows",
        "distro_name": caption,
        "distro_version": _text(raw.get("Version")),
        "os_caption": caption,
        "os_version": _text(raw.get("Version")),
        "os_build": int(build) if build and build.isdigit() else build,
        "kernel": _text(raw.get("Version")),
        "arch": _text(raw.get("OSArchitecture")),
        "hostname": hostname,
        "domain": domain,
        "workgroup": _text(raw.get("Domain")) if not raw.get("PartOfDomain") else None,
        "fqdn": fqdn,
        "product_type": _PRODUCT_TYPES.get(product, product) if isinstance(product, int)
        else product,
        "last_boot": boot.isoformat() if isinstance(boot, datetime) else _text(boot),
        "user": _text(raw.get("User")),
        "is_root": bool(raw.get("IsAdmin")),
        "ps_version": _text(raw.get("PSVersion")),
        "pkg_mgr": "windows_update",
    }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
