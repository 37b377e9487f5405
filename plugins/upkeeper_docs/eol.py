"""End-of-life lookup from the shipped table ``eol.yml`` (maintained by hand, with the
date it was last reviewed)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

#: Distributions whose releases follow another's lifecycle (``ID`` -> table family).
_SAME_AS = {"rocky": "rhel", "almalinux": "rhel", "ol": "rhel", "redhat": "rhel",
            "sled": "sles", "sles_sap": "sles", "opensuse-leap": None}
#: Families whose releases fall back to their major version.
_MAJOR_ONLY = {"debian", "rhel", "centos", "sles"}


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    text = resources.files("upkeeper_docs").joinpath("eol.yml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def reviewed() -> str:
    return str(table()["reviewed"])


SOURCE = "upkeeper_docs eol.yml"


@dataclass(frozen=True)
class Lifecycle:
    """What the table says about one release; ``end`` None when it does not know it."""

    end: date | None
    why: str

    def eol(self, now: float | None = None) -> bool | None:
        if self.end is None:
            return None
        today = datetime.fromtimestamp(now if now is not None else time.time(),
                                       tz=timezone.utc).date()
        return today >= self.end

    def date_field(self) -> Any:
        if self.end is None:
            return {"unavailable": self.why}
        return self.end.isoformat()


def lookup(distro: str, version: str, like: str = "") -> Lifecycle:
    """The release's end of support: ``distro`` is os-release ``ID`` (or ``windows``),
    ``version`` its ``VERSION_ID`` (or the Windows build number)."""
    releases = table()["releases"]
    family = distro.lower().strip()
    family = _SAME_AS.get(family, family) or ""
    if family not in releases:
        for candidate in like.lower().split():
            if candidate in releases and candidate in ("rhel", "sles"):
                family = candidate
                break
    where = f"(table reviewed {reviewed()})"
    if family not in releases:
        return Lifecycle(None, f"{distro or 'this OS'} is not in the EOL table {where}")
    key = version.strip()
    entry = releases[family].get(key)  # a service pack (SLES 15.5) before its major
    if not entry and family in _MAJOR_ONLY:
        entry = releases[family].get(key.split(".")[0])
    if not entry:
        return Lifecycle(None, f"{family} {version} is not in the EOL table {where}")
    return Lifecycle(date.fromisoformat(str(entry["date"])), "")
