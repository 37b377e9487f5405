"""A playbook's ``notify:`` section: channels (a notifier and its params) and the alert
policy (threshold, reminders, digests, muting), in the shapes playbooks may write them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from upkeeper.measures import parse_duration, warn_bare_duration
from upkeeper.models import Status

#: Keys of a channel entry that belong to the policy, not to the notifier's params.
CHANNEL_KEYS = {"notifier", "name", "min_status", "recovery", "digest", "retries", "backoff"}
_BARE = re.compile(r"\d+(?:\.\d+)?")
POLICY_KEYS = {"min_status", "renotify", "digest", "mute_in_window", "recovery", "channels",
               "template_dir"}
_OFF = ("", "never", "off", "no")


def parse_renotify(value: Any) -> timedelta | None:
    """A reminder interval: a duration with a unit (``24h``, ``1d12h``, ``90m``, parsed by
    :func:`upkeeper.measures.parse_duration`); ``0``/``never``/``off``/None -> None (no
    reminders). A bare number was seconds before API 1.1 and still is, with a warning."""
    if value is None or value is False:
        return None
    if isinstance(value, timedelta):
        return value or None
    text = str(value).strip().lower()
    if text in _OFF:
        return None
    bare = not isinstance(value, bool) and _BARE.fullmatch(text) is not None
    if bare and float(text) == 0:
        return None
    if bare:
        warn_bare_duration(value, "s", "notify: renotify")
    return parse_duration(value, bare_unit="s" if bare else None) or None


def _status(value: Any) -> Status:
    try:
        status = Status(str(value).upper())
    except ValueError:
        raise ValueError(f"'{value}' is not a status (WARN, UNKNOWN or CRIT)") from None
    if status.severity < Status.WARN.severity:
        raise ValueError("min_status must be WARN, UNKNOWN or CRIT")
    return status


class ChannelConfig(BaseModel):
    """One destination: a registered notifier and its params, with policy overrides."""

    model_config = ConfigDict(extra="forbid")

    notifier: str
    name: str | None = Field(None, description="Stable id for dedup state (default: derived)")
    min_status: Status | None = None
    recovery: bool | None = None
    digest: bool | None = None
    retries: int = Field(3, ge=0, le=10, description="Extra attempts after a failure")
    backoff: float = Field(2.0, ge=0, le=600, description="First retry delay, doubled each time")
    params: dict[str, Any] = Field(default_factory=dict)
    #: Where this channel's params sit in the playbook, for file:line messages.
    source_path: tuple[str | int, ...] = Field(default=(), exclude=True)

    @field_validator("min_status", mode="before")
    @classmethod
    def _check_min(cls, v: Any) -> Status | None:
        return None if v is None else _status(v)

    @property
    def channel_id(self) -> str:
        """Names the dedup state: explicit ``name``, else notifier + a hash of its target,
        so reordering channels does not re-send every open alert."""
        if self.name:
            return self.name
        target = {k: self.params.get(k) for k in ("to", "url", "host", "smtp_host")
                  if k in self.params}
        digest = hashlib.sha256(json.dumps(target, sort_keys=True, default=str).encode())
        return f"{self.notifier}-{digest.hexdigest()[:8]}"


class NotifyConfig(BaseModel):
    """A playbook's ``notify:`` section."""

    model_config = ConfigDict(extra="forbid")

    min_status: Status = Field(Status.WARN, description="Least severe status that alerts")
    renotify: timedelta | None = Field(timedelta(hours=24),
                                       description="Remind while still failing (0: never)")
    digest: bool = Field(False, description="One message per run per client")
    mute_in_window: bool | None = Field(
        None, description="No alerts for hosts inside a maintenance window (default: the "
                          "host var mute_in_window)")
    recovery: bool = Field(True, description="Tell when a problem is back to OK")
    template_dir: str | None = Field(None, description="Overrides for notification templates")
    channels: list[ChannelConfig] = Field(min_length=1)

    @field_validator("min_status", mode="before")
    @classmethod
    def _check_min(cls, v: Any) -> Status:
        return _status(v)

    @field_validator("renotify", mode="before")
    @classmethod
    def _check_renotify(cls, v: Any) -> timedelta | None:
        return parse_renotify(v)

    def effective(self, channel: ChannelConfig) -> tuple[Status, bool, bool]:
        """(min_status, recovery, digest) for one channel."""
        return (channel.min_status or self.min_status,
                self.recovery if channel.recovery is None else channel.recovery,
                self.digest if channel.digest is None else channel.digest)


def _channel(item: Any, path: tuple[str | int, ...]) -> dict[str, Any]:
    """``{notifier: email, to: ...}`` or ``{email: {to: ...}}`` to the ChannelConfig shape."""
    if not isinstance(item, Mapping):
        raise ValueError(f"a channel is a mapping like {{email: {{...}}}}, "
                         f"not {type(item).__name__}")
    if "notifier" in item:
        params = {k: v for k, v in item.items() if k not in CHANNEL_KEYS}
        policy = {k: v for k, v in item.items() if k in CHANNEL_KEYS}
        return {**policy, "params": params, "source_path": path}
    if len(item) == 1:
        (kind, body), = item.items()
        body = body or {}
        if not isinstance(body, Mapping):
            raise ValueError(f"{kind}: expected a mapping of settings, not {type(body).__name__}")
        params = {k: v for k, v in body.items() if k not in CHANNEL_KEYS}
        policy = {k: v for k, v in body.items() if k in CHANNEL_KEYS and k != "notifier"}
        return {**policy, "notifier": str(kind), "params": params,
                "source_path": (*path, str(kind))}
    raise ValueError("a channel needs 'notifier: NAME' or a single key naming the notifier")


def normalise_notify(raw: Any) -> dict[str, Any]:
    """Accept a list of channels, one channel, or the full policy mapping."""
    if isinstance(raw, list):
        return {"channels": [_channel(c, ("notify", i)) for i, c in enumerate(raw)]}
    if not isinstance(raw, Mapping):
        raise ValueError(f"notify: expected a mapping or a list of channels, "
                         f"not {type(raw).__name__}")
    if "channels" not in raw and ("notifier" in raw or not set(raw) & POLICY_KEYS):
        return {"channels": [_channel(raw, ("notify",))]}
    out = dict(raw)
    chans = raw.get("channels")
    if isinstance(chans, list):
        out["channels"] = [_channel(c, ("notify", "channels", i)) for i, c in enumerate(chans)]
    return out


def parse_notify(raw: Any) -> NotifyConfig | None:
    """The ``notify:`` section as a config; raises ValueError / ValidationError."""
    if raw is None:
        return None
    return NotifyConfig.model_validate(normalise_notify(raw))
