"""Host facts for POSIX systems: one small script, parsed by a pure function."""

from __future__ import annotations

import shlex
from typing import Any

#: Printed sections are separated by marker lines so one round trip gathers everything.
FACTS_SCRIPT = (
    "LC_ALL=C; export LC_ALL; "
    "echo '@@uname'; uname -s; uname -r; uname -m; "
    "echo '@@hostname'; (hostname 2>/dev/null || uname -n); "
    "echo '@@os-release'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null; "
    "echo '@@pkg'; for p in apt-get dnf yum zypper apk pacman; do "
    "command -v $p >/dev/null 2>&1 && echo $p; done; "
    "echo '@@uid'; id -u; "
    "echo '@@end'"
)

_PKG_NAMES = {"apt-get": "apt", "dnf": "dnf", "yum": "yum", "zypper": "zypper",
              "apk": "apk", "pacman": "pacman"}


def parse_os_release(text: str) -> dict[str, str]:
    """Parse ``/etc/os-release`` (shell-style KEY=value lines, values maybe quoted)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("\"'")]
        out[key.strip()] = parts[0] if parts else ""
    return out


def parse_posix_facts(text: str) -> dict[str, Any]:
    """Turn the output of :data:`FACTS_SCRIPT` into facts.

    Keys: ``os_family`` (linux, darwin, freebsd ...), ``kernel``, ``arch``, ``hostname``,
    ``distro`` (os-release ID), ``distro_version``, ``distro_like``, ``distro_name``,
    ``pkg_mgr`` (apt, dnf, yum, zypper, apk, pacman or None), ``is_root``.
    """
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        elif current:
            sections[current].append(line)
    uname = [x.strip() for x in sections.get("uname", [])] + ["", "", ""]
    osr = parse_os_release("\n".join(sections.get("os-release", [])))
    pkgs = [p.strip() for p in sections.get("pkg", []) if p.strip()]
    pkg_mgr = None
    for candidate in ("apt-get", "dnf", "zypper", "yum", "apk", "pacman"):
        if candidate in pkgs:
            pkg_mgr = _PKG_NAMES[candidate]
            break
    host_lines = [x.strip() for x in sections.get("hostname", []) if x.strip()]
    uid = [x.strip() for x in sections.get("uid", []) if x.strip()]
    return {
        "os_family": (uname[0] or "linux").lower(),
        "kernel": uname[1],
        "arch": uname[2],
        "hostname": host_lines[0] if host_lines else "",
        "distro": osr.get("ID", "").lower(),
        "distro_version": osr.get("VERSION_ID", ""),
        "distro_like": osr.get("ID_LIKE", ""),
        "distro_name": osr.get("PRETTY_NAME", osr.get("NAME", "")),
        "pkg_mgr": pkg_mgr,
        "is_root": bool(uid) and uid[0] == "0",
    }
