"""A playbook's ``report:`` section: its model and parsing, and the file:line message
helpers the after-run validators share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from upkeeper.engine.playbook import Playbook

Format = Literal["html", "md"]
TREND_DAYS = 30


class ReportError(Exception):
    """A report cannot be produced: unknown template, unknown run, bad format."""


class ReportConfig(BaseModel):
    """One entry of a playbook's ``report:`` section (a mapping or a list of them)."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field("client", description="Template name: client, summary or your own")
    format: Format = Field("html", description="html or md")
    path: str = Field(description="Output file; {client}, {date}, {run_id}, {playbook} are "
                                  "filled in; with {client} one file per client")
    template_dir: str | None = Field(None, description="Directory searched before built-ins")
    client: str | None = Field(None, description="Only this client")
    trend_days: int = Field(TREND_DAYS, ge=1, le=3660, description="Days shown in sparklines")


def parse_report(raw: Any) -> list[ReportConfig]:
    """The ``report:`` section as configs; raises ValidationError or ValueError."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ValueError(f"each report entry is a mapping with template, format and path,"
                             f" not {type(item).__name__}")
        out.append(ReportConfig.model_validate(item))
    return out


def describe(err: Any) -> str:
    """A pydantic error as one line naming the key."""
    loc = ".".join(str(p) for p in err["loc"] if p != "params")
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    if err["type"] == "missing":
        return f"missing required key '{loc}'"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def at(pb: Playbook, key_path: tuple[str | int, ...], message: str) -> str:
    """``file:line: message`` for a key of the playbook (``file: message`` without a line)."""
    line = pb.line_of(tuple(key_path))
    return f"{pb.path}:{line}: {message}" if line else f"{pb.path}: {message}"
