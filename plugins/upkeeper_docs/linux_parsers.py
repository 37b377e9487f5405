"""Pure parsers for the Linux collection script's sections (tested from captured output).

Each takes the text of one section (``LC_ALL=C``) and returns plain data; lines they do
not understand are skipped, never guessed at.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

_KV_PAIR = re.compile(r'([A-Z_:.-]+)="((?:[^"\\]|\\.)*)"')
#: Filesystem types that hold no data of their own (not documented as filesystems).
PSEUDO_FSTYPES = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "securityfs",
    "pstore", "debugfs", "tracefs", "configfs", "fusectl", "mqueue", "hugetlbfs", "bpf",
    "autofs", "binfmt_misc", "rpc_pipefs", "nsfs", "overlay", "squashfs", "efivarfs",
    "ramfs", "selinuxfs", "devfs", "shm", "none", "fuse.lxcfs", "fuse.gvfsd-fuse", "nfsd"})
#: unit file states that mean "starts at boot" (``static`` units start when pulled in).
_ENABLED_STATES = frozenset({"enabled", "enabled-runtime", "generated", "indirect"})


def parse_key_values(text: str, sep: str = "=") -> dict[str, str]:
    """``KEY=value`` lines (os-release style: values may be shell-quoted)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.strip().partition(sep)
        if not eq or not key or key.startswith("#"):
            continue
        value = value.strip()
        try:
            words = shlex.split(value)
            value = " ".join(words) if words else ""
        except ValueError:
            value = value.strip("\"'")
        out[key.strip()] = value
    return out


def parse_lscpu(text: str) -> dict[str, Any]:
    """Model, cores and threads from ``lscpu`` (``Key: value`` lines)."""
    kv = {k.strip(): v.strip() for k, _, v in
          (line.partition(":") for line in text.splitlines()) if k.strip()}
    out: dict[str, Any] = {"cpu_model": kv.get("Model name") or kv.get("Model") or None}
    threads = _int(kv.get("CPU(s)"))
    cores_per_socket = _int(kv.get("Core(s) per socket") or kv.get("Core(s) per cluster"))
    sockets = _int(kv.get("Socket(s)") or kv.get("Cluster(s)")) or 1
    out["cpu_threads"] = threads
    out["cpu_cores"] = cores_per_socket * sockets if cores_per_socket else None
    return out


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The same from ``/proc/cpuinfo`` (where lscpu is missing)."""
    model, threads, cores = None, 0, set()
    physical = core = ""
    for line in [*text.splitlines(), ""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            threads += 1
        elif key in ("model name", "Processor", "cpu model") and not model:
            model = value
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
        elif not key and (physical or core):
            cores.add((physical, core))
            physical = core = ""
    return {"cpu_model": model, "cpu_threads": threads or None,
            "cpu_cores": len(cores) or None}


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` lines in bytes (``MemTotal: 123 kB``)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+):\s+(\d+)(?:\s+kB)?", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * (1024 if "kB" in line else 1)
    return out


def parse_lsblk_pairs(text: str) -> list[dict[str, Any]]:
    """Whole disks from ``lsblk -d -b -P -o NAME,TYPE,SIZE,MODEL,SERIAL``."""
    disks = []
    for line in text.splitlines():
        row = {k: _unescape(v).strip() for k, v in _KV_PAIR.findall(line)}
        if not row.get("NAME") or row.get("TYPE", "disk") != "disk":
            continue
        size = _int(row.get("SIZE"))
        if not size:  # empty zram/loop/cd drives
            continue
        disks.append({"name": row["NAME"], "model": row.get("MODEL") or None,
                      "serial": row.get("SERIAL") or None, "size_bytes": size})
    return disks


def parse_df(text: str) -> list[dict[str, Any]]:
    """``df -PkT`` (or ``df -Pk``) rows of real filesystems; a device name on a line of its
    own (busybox wraps long names) joins the next line."""
    rows: list[dict[str, Any]] = []
    lines = text.splitlines()
    typed = bool(lines) and "Type" in lines[0].split()
    carry = ""
    for line in lines[1:] if lines and lines[0].startswith("Filesystem") else lines:
        words = (carry + " " + line).split() if carry else line.split()
        want = 7 if typed else 6
        if len(words) < want:
            carry = " ".join(words)
            continue
        carry = ""
        device = words[0]
        fstype = words[1] if typed else None
        nums = words[2:6] if typed else words[1:5]
        mount = " ".join(words[want - 1:])
        size, used, avail = _int(nums[0]), _int(nums[1]), _int(nums[2])
        if size is None or not mount.startswith("/"):
            continue
        if (fstype or device).lower() in PSEUDO_FSTYPES or size == 0:
            continue
        rows.append({"mount": mount, "device": device, "fstype": fstype,
                     "size_bytes": size * 1024, "used_bytes": (used or 0) * 1024,
                     "free_bytes": (avail or 0) * 1024})
    return sorted(rows, key=lambda r: r["mount"])


def parse_ip_link(text: str) -> dict[str, str | None]:
    """Interface name -> MAC from ``ip -o link show``."""
    macs: dict[str, str | None] = {}
    for line in text.splitlines():
        m = re.match(r"^\d+:\s+([^:\s]+?)(?:@\S+)?:\s", line)
        if not m:
            continue
        mac = re.search(r"link/\S+\s+([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})\b", line)
        macs[m.group(1)] = mac.group(1).lower() if mac else None
    return macs


def parse_ip_addr(text: str) -> dict[str, dict[str, Any]]:
    """Interface name -> addresses and whether an IPv4 address is a lease (``dynamic``:
    it has a finite lifetime, as DHCP clients set it) from ``ip -o addr show``."""
    out: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        m = re.match(r"^\d+:\s+(\S+?)\s+(inet6?)\s+(\S+)", line)
        if not m:
            continue
        name, family, addr = m.group(1), m.group(2), m.group(3)
        entry = out.setdefault(name, {"addresses": [], "dynamic4": False})
        entry["addresses"].append(addr)
        if family == "inet" and re.search(r"\bdynamic\b", line):
            entry["dynamic4"] = True
    return out


def parse_default_routes(text: str) -> list[str]:
    """Gateways of ``ip route show default`` / ``ip -6 route show default``."""
    return [m.group(1) for m in re.finditer(r"^default\s+via\s+(\S+)", text, re.M)]


def parse_nameservers(text: str) -> list[str]:
    seen: list[str] = []
    for m in re.finditer(r"^\s*nameserver\s+(\S+)", text, re.M):
        if m.group(1) not in seen:
            seen.append(m.group(1))
    return seen


def split_host_port(local: str) -> tuple[str, int | None]:
    """``0.0.0.0:22``, ``[::]:443``, ``*:80``, ``127.0.0.53%lo:53``, ``:::22``,
    ``[fe80::1]%eth0:123``."""
    addr, _, port = local.rpartition(":")
    # the zone may sit inside or after the brackets: [fe80::1%eth0] or [fe80::1]%eth0
    addr = addr.split("%", 1)[0].strip("[]")
    if addr in ("", "::"):
        addr = "::" if local.startswith((":", "[")) else "*"
    return addr, _int(port)


def parse_ss(text: str) -> list[dict[str, Any]]:
    """Listening sockets from ``ss -tulpn`` (header optional) or ``netstat -tulpn``; only
    the process *names* are kept."""
    ports: dict[tuple[str, str, int], dict[str, Any]] = {}
    netstat = text.lstrip().startswith("#netstat")
    for line in text.splitlines():
        words = line.split()
        if len(words) < 5 or words[0] in ("Netid", "Proto", "Active", "#netstat"):
            continue
        proto = words[0].rstrip("6").lower()
        if proto not in ("tcp", "udp"):
            continue
        if netstat:
            local = words[3]
            if proto == "tcp" and "LISTEN" not in words:
                continue
            procs = re.findall(r"\d+/(\S+)", " ".join(words[5:]))
        else:
            state = words[1]
            if proto == "tcp" and state != "LISTEN":
                continue
            local = words[4]
            # users:(("sshd",pid=1,fd=3)); ss before iproute2 3.12: users:(("sshd",1,3))
            procs = re.findall(r'\("((?:[^"\\]|\\.)*)",(?:pid=)?\d+', line)
        address, port = split_host_port(local)
        if port is None:
            continue
        key = (proto, address, port)
        item = ports.setdefault(key, {"proto": proto, "address": address, "port": port,
                                      "process": None})
        names = sorted(set(procs))
        if names:
            item["process"] = ",".join(sorted(set(names) | set(
                (item["process"] or "").split(",")) - {""}))
    return sorted(ports.values(), key=lambda p: (p["proto"], p["port"], p["address"]))


def parse_dpkg(text: str) -> list[dict[str, Any]]:
    """Installed packages from ``dpkg-query -W -f='${db:Status-Abbrev}\\t${binary:Package}
    \\t${Version}\\t${Architecture}\\n'`` (``ii``/``hi`` rows: installed, maybe held)."""
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 4 or len(parts[0].strip()) < 2 or parts[0].strip()[1] != "i":
            continue
        name = parts[1].split(":", 1)[0] if parts[1].endswith(":" + parts[3]) else parts[1]
        out.append({"name": name, "version": parts[2], "arch": parts[3] or None})
    return merge_versions(out)


def parse_rpm(text: str) -> list[dict[str, Any]]:
    """``rpm -qa --qf '%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n'``;
    imported signing keys (``gpg-pubkey``) are not software."""
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not parts[0] or parts[0] == "gpg-pubkey":
            continue
        arch = parts[2].strip()
        out.append({"name": parts[0], "version": parts[1],
                    "arch": None if arch in ("", "(none)") else arch})
    return merge_versions(out)


def merge_versions(packages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per (name, arch): packages installed in several versions at once (kernels)
    list them all, sorted, comma-separated."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for pkg in packages:
        key = (pkg["name"], pkg["arch"] or "")
        if key in merged:
            versions = set(str(merged[key]["version"]).split(", ")) | {pkg["version"]}
            merged[key]["version"] = ", ".join(sorted(versions))
        else:
            merged[key] = dict(pkg)
    return [merged[k] for k in sorted(merged)]


def parse_systemctl(unit_files: str, units: str | None) -> list[dict[str, Any]]:
    """Services from ``systemctl list-unit-files --type=service`` and (when systemd runs)
    ``list-units --type=service --all --plain``; templates only through their instances."""
    states: dict[str, str] = {}
    for line in unit_files.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].endswith(".service"):
            states[words[0]] = words[1]
    running: dict[str, bool] = {}
    for line in (units or "").splitlines():
        words = line.lstrip("● *").split()
        if len(words) >= 4 and words[0].endswith(".service"):
            running[words[0]] = words[3] == "running"
    names = {n for n, s in states.items() if "@." not in n and s != "alias"} | set(running)
    out = []
    for name in sorted(names):
        state = states.get(name) or states.get(re.sub(r"@[^.]*\.", "@.", name), "")
        item: dict[str, Any] = {"name": name.removesuffix(".service"),
                                "enabled": state in _ENABLED_STATES}
        item["running"] = running.get(name, False) if units is not None else None
        out.append(item)
    return out


def parse_admin_groups(text: str) -> list[dict[str, str]]:
    """Members of the admin groups from the script's ``group:gid:members`` lines and
    ``primary:group:user`` lines (users whose primary group it is)."""
    out: set[tuple[str, str]] = set()
    for line in text.splitlines():
        parts = line.strip().split(":")
        if parts[0] == "primary" and len(parts) == 3 and parts[2]:
            out.add((parts[2], parts[1]))
        elif len(parts) == 3 and parts[0] and parts[0] != "primary":
            out.update((m.strip(), parts[0]) for m in parts[2].split(",") if m.strip())
    return [{"name": n, "group": g} for n, g in sorted(out)]


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _unescape(value: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)
