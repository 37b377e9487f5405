"""Data shared by the patching parsers: pending updates, the host's patch state, and
the marker-separated output of the one-round-trip status scripts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from upkeeper_patching.runs import PatchRun

_RC_RE = re.compile(r"^@@upk-rc (-?\d+)\s*$")
_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


@dataclass
class Update:
    """One pending update: a package (from -> to version), a patch or a Windows update."""

    name: str
    available: str = ""
    current: str = ""
    arch: str = ""
    repo: str = ""
    security: bool = False
    severity: str = ""
    advisory: str = ""
    kind: str = "package"
    title: str = ""
    replaces: str = ""
    classification: str = ""

    @property
    def key(self) -> str:
        """Identity used to remember when this update was first seen.

        Packages are keyed by name (a newer security version of an already pending
        package does not reset its age); Windows updates by KB or title.
        """
        return self.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key in ("current", "available", "arch", "repo", "severity", "advisory", "title",
                    "replaces", "classification"):
            value = getattr(self, key)
            if value:
                out[key] = value
        out["security"] = self.security
        if self.kind != "package":
            out["kind"] = self.kind
        return out


@dataclass
class PatchState:
    """What a status gather learned about one host."""

    manager: str
    updates: list[Update] = field(default_factory=list)
    reboot_required: bool | None = None
    reboot_since: datetime | None = None
    reboot_reasons: list[str] = field(default_factory=list)
    #: The newest patch run in the package manager's history (None: none, or history
    #: cannot tell). Installing a single package is not a patch run.
    last_patch_run: PatchRun | None = None
    #: False when the security status of pending updates cannot be told (updateinfo
    #: failed): then only a full upgrade (nothing pending) counts as patched.
    security_known: bool = True
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def security(self) -> list[Update]:
        return [u for u in self.updates if u.security]


@dataclass
class Section:
    text: str
    rc: int | None = None


def split_sections(text: str) -> dict[str, Section]:
    """Split ``@@upk:NAME`` marked output; a ``@@upk-rc N`` line sets that section's rc."""
    sections: dict[str, Section] = {}
    current: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if current is not None:
            sections.setdefault(current, Section("")).text = "\n".join(lines)

    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line.startswith("@@upk:"):
            flush()
            current = line[6:].strip()
            lines = []
            sections[current] = Section("")
            continue
        m = _RC_RE.match(line)
        if m and current is not None:
            sections[current].rc = int(m.group(1))
            continue
        if current is not None:
            lines.append(line)
    flush()
    return sections


def parse_offset(text: str) -> timezone:
    """``date +%z`` output (``+0100``) -> a fixed-offset timezone; UTC when unreadable."""
    m = _OFFSET_RE.match(text.strip())
    if not m:
        return timezone.utc
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    return timezone(-delta if m.group(1) == "-" else delta)


def parse_epoch(text: str) -> datetime | None:
    """The last integer on a line of ``text`` (``stat -c %Y`` output) as an aware datetime."""
    for line in reversed(text.strip().splitlines()):
        token = line.strip()
        if token.isdigit() and int(token) > 0:
            return datetime.fromtimestamp(int(token), tz=timezone.utc)
    return None


def rpm_name(nevra: str) -> str:
    """``openssl-libs-1:3.0.7-25.el9.x86_64`` -> ``openssl-libs`` (name of an NEVRA)."""
    base = nevra
    m = re.match(r"^(.*)\.([A-Za-z0-9_]+)$", base)
    if m and m.group(2) in RPM_ARCHES:
        base = m.group(1)
    parts = base.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else base


RPM_ARCHES = frozenset({
    "x86_64", "noarch", "i386", "i486", "i586", "i686", "aarch64", "ppc64le", "ppc64", "ppc",
    "s390x", "s390", "armv7hl", "armv7hnl", "armv6hl", "armhfp", "riscv64", "loongarch64",
    "src", "ia32e", "amd64", "athlon", "ia64",
})
