"""Pure parsers for disk tools: POSIX/GNU/BusyBox ``df``, ``/proc/mounts`` and Windows CIM.

They accept what real tools print: wrapped device names, mount points with spaces (raw or
``\\040``-escaped), stderr noise, ``-`` for unknown values and any ``N-blocks`` header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Filesystem types that hold no user data (or cannot fill up) and are skipped by default.
PSEUDO_FSTYPES: frozenset[str] = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devfs",
    "devpts", "devtmpfs", "efivarfs", "fuse.gvfsd-fuse", "fuse.lxcfs", "fuse.portal",
    "fusectl", "hugetlbfs", "iso9660", "mqueue", "nsfs", "nfsd", "overlay", "proc",
    "pstore", "ramfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs",
    "tmpfs", "tracefs", "udf", "aufs", "none", "rootfs", "zram",
})

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SI_UNITS = {"KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
_BLOCKS_RE = re.compile(r"^(\d+)?([KMGT]i?B?)?-blocks$", re.IGNORECASE)
_OCTAL_RE = re.compile(r"\\([0-7]{3})")
_NUM = r"-?\d+|-"


class DfParseError(ValueError):
    """The text has no recognisable ``df`` table."""


@dataclass
class Filesystem:
    """One mounted filesystem as ``df`` reports it (sizes in bytes)."""

    mount: str
    device: str
    fstype: str | None
    size_bytes: int
    used_bytes: int
    avail_bytes: int
    readonly: bool = False
    inodes_total: int | None = None
    inodes_used: int | None = None
    inodes_free: int | None = None
    options: list[str] = field(default_factory=list)

    @property
    def used_pct(self) -> int:
        return ceil_pct(self.used_bytes, self.used_bytes + self.avail_bytes)

    @property
    def inodes_used_pct(self) -> int | None:
        if not self.inodes_total or self.inodes_used is None:
            return None
        free = self.inodes_free if self.inodes_free is not None else (
            self.inodes_total - self.inodes_used)
        return ceil_pct(self.inodes_used, self.inodes_used + free)


@dataclass
class InodeUsage:
    """One line of ``df -i``."""

    mount: str
    device: str
    total: int | None
    used: int | None
    free: int | None


@dataclass
class MountEntry:
    """One line of ``/proc/mounts``."""

    device: str
    mount: str
    fstype: str
    options: list[str]

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


def ceil_pct(used: int, total: int) -> int:
    """Percent used as df's Capacity column computes it: rounded up, 0 for an empty fs."""
    if total <= 0:
        return 0
    return -(-used * 100 // total)


def unescape_mount(text: str) -> str:
    """Undo the octal escapes (``\\040`` space, ``\\011`` tab ...) of mtab and some dfs."""
    return _OCTAL_RE.sub(lambda m: chr(int(m.group(1), 8)), text)


@dataclass
class _Row:
    device: str
    fstype: str | None
    total: int | None
    used: int | None
    avail: int | None
    mount: str


@dataclass
class _Layout:
    has_type: bool
    unit: int
    inodes: bool
    regex: re.Pattern[str]


def _layout(header: str) -> _Layout | None:
    words = header.split()
    if len(words) < 6 or words[0].lower() != "filesystem":
        return None
    has_type = words[1].lower() == "type"
    size_word = words[2 if has_type else 1]
    inodes = size_word.lower() == "inodes"
    unit = 1
    if not inodes:
        m = _BLOCKS_RE.match(size_word)
        if not m:
            # ``Size`` means human-readable (-h) output, which loses precision.
            return None
        count = int(m.group(1) or 1)
        suffix = (m.group(2) or "").upper()
        if suffix in _SI_UNITS:
            unit = count * _SI_UNITS[suffix]
        else:
            unit = count * _UNITS[suffix.replace("IB", "").replace("B", "")[:1]]
    type_part = r"(?P<type>\S+)\s+" if has_type else ""
    regex = re.compile(
        rf"^(?P<dev>.+?)\s+{type_part}(?P<total>{_NUM})\s+(?P<used>{_NUM})\s+"
        rf"(?P<avail>{_NUM})\s+(?:\d+%|-)\s+(?P<mount>\S.*?)\s*$"
    )
    return _Layout(has_type, unit, inodes, regex)


def _num(text: str, unit: int = 1) -> int | None:
    return None if text == "-" else int(text) * unit


def _parse_table(text: str, want_inodes: bool) -> list[_Row]:
    """Rows of every ``df`` table in ``text`` of the wanted kind, joining wrapped lines."""
    layout: _Layout | None = None
    seen_table = False
    rows: list[_Row] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        new = _layout(line)
        if new is not None:
            layout = new if new.inodes == want_inodes else None
            seen_table = seen_table or layout is not None
            pending = ""
            continue
        if layout is None:
            continue
        candidate = line.strip()
        # A long device name can sit alone on its line with the numbers on the next one.
        if pending and raw[:1].isspace():
            candidate = f"{pending} {candidate}"
        m = layout.regex.match(candidate)
        if m is None:
            pending = "" if raw[:1].isspace() else candidate
            continue
        pending = ""
        unit = 1 if layout.inodes else layout.unit
        rows.append(_Row(
            device=unescape_mount(m.group("dev")),
            fstype=m.group("type") if layout.has_type else None,
            total=_num(m.group("total"), unit),
            used=_num(m.group("used"), unit),
            avail=_num(m.group("avail"), unit),
            mount=unescape_mount(m.group("mount")),
        ))
    if not seen_table:
        kind = "df -i" if want_inodes else "df -Pk"
        raise DfParseError(f"no {kind} table found in output: {text.strip()[:120]!r}")
    return rows


def parse_df(text: str) -> list[Filesystem]:
    """Filesystems from ``df -PkT`` / ``df -Pk`` / ``df -k`` (GNU, BusyBox, BSD).

    Rows without a size (``-``) are dropped; a later row for the same mount point wins.

    :raises DfParseError: there is no block-size table in ``text``.
    """
    out: dict[str, Filesystem] = {}
    for r in _parse_table(text, want_inodes=False):
        if r.total is None or r.used is None or r.avail is None:
            continue
        # An overfull filesystem (root used its reserve) can show negative availability.
        out[r.mount] = Filesystem(mount=r.mount, device=r.device, fstype=r.fstype,
                                  size_bytes=r.total, used_bytes=r.used,
                                  avail_bytes=max(0, r.avail))
    return list(out.values())


def parse_df_inodes(text: str) -> dict[str, InodeUsage]:
    """Inode usage per mount point from ``df -Pi`` / ``df -i``.

    :raises DfParseError: there is no inode table in ``text``.
    """
    return {r.mount: InodeUsage(r.mount, r.device, r.total, r.used, r.avail)
            for r in _parse_table(text, want_inodes=True)}


def parse_proc_mounts(text: str) -> dict[str, MountEntry]:
    """``/proc/mounts`` by mount point (the last entry for a mount point is the visible one)."""
    out: dict[str, MountEntry] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mount = unescape_mount(parts[1])
        out[mount] = MountEntry(unescape_mount(parts[0]), mount, parts[2], parts[3].split(","))
    return out


def merge_usage(filesystems: Iterable[Filesystem], inodes: Mapping[str, InodeUsage],
                mounts: Mapping[str, MountEntry]) -> list[Filesystem]:
    """Add inode counts, the fstype (when df did not print it) and mount options."""
    merged = []
    for fs in filesystems:
        ino = inodes.get(fs.mount)
        if ino is not None and ino.total:
            fs.inodes_total, fs.inodes_used, fs.inodes_free = ino.total, ino.used, ino.free
        entry = mounts.get(fs.mount)
        if entry is not None:
            fs.fstype = fs.fstype or entry.fstype
            fs.options = entry.options
            fs.readonly = entry.readonly
        merged.append(fs)
    return merged


def guess_fstype(fs: Filesystem) -> str:
    """The fstype, or for dfs that print none a guess from pseudo device names."""
    if fs.fstype:
        return fs.fstype
    if fs.device in PSEUDO_FSTYPES or fs.device in ("udev", "shm", "systemd-1", "cgroup_root"):
        return "tmpfs" if fs.device in ("udev", "shm") else fs.device
    return ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _drive_letter(value: Any) -> str:
    # PowerShell 5.1 serialises a [char] DriveLetter as its code point (67 for C).
    if isinstance(value, int) and not isinstance(value, bool) and 65 <= value <= 122:
        return chr(value).upper()
    if isinstance(value, str) and value.strip()[:1].isalpha():
        return value.strip()[0].upper()
    return ""


def parse_windows_volumes(rows: Any) -> list[Filesystem]:
    """Volumes from ``Win32_LogicalDisk``, ``Win32_Volume`` or ``Get-Volume`` JSON objects.

    Accepts a list or a lone object (PowerShell 5.1), letters as characters or numbers.
    Volumes without a drive letter or mount folder (recovery partitions) are left out.
    """
    if isinstance(rows, dict):
        rows = [rows]
    out: list[Filesystem] = []
    for row in rows or []:
        if not isinstance(row, dict):
            continue
        size = _int(row.get("Size", row.get("Capacity")))
        free = _int(row.get("FreeSpace", row.get("SizeRemaining")))
        if size is None or free is None or size <= 0:
            continue
        mount = str(row.get("DeviceID") or "").strip()
        if not mount or mount.startswith("\\\\?\\"):
            letter = _drive_letter(row.get("DriveLetter"))
            name = str(row.get("Name") or "")
            if letter:
                mount = f"{letter}:"
            elif name and not name.startswith("\\\\?\\"):
                mount = name.rstrip("\\") or name
            else:
                continue
        fstype = row.get("FileSystem") or row.get("FileSystemType") or ""
        label = row.get("VolumeName") or row.get("FileSystemLabel") or row.get("Label") or ""
        out.append(Filesystem(mount=mount, device=str(label), fstype=str(fstype),
                              size_bytes=size, used_bytes=max(0, size - free),
                              avail_bytes=free))
    return out
