"""Alert policy: which results are worth a message (new problems, changes, reminders and
recoveries), per channel, with the last notified state kept in history across restarts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from upkeeper.engine.templating import is_templated
from upkeeper.models import Host, Result, Status

if TYPE_CHECKING:
    from upkeeper.engine.playbook import Playbook
    from upkeeper.plugins import Registry
    from upkeeper.store.history import History

log = logging.getLogger("upkeeper.after_run.alerts")

#: Keys of a channel entry that belong to the policy, not to the notifier's params.
CHANNEL_KEYS = {"notifier", "name", "min_status", "recovery", "digest", "retries", "backoff"}
POLICY_KEYS = {"min_status", "renotify", "digest", "mute_in_window", "recovery", "channels",
               "template_dir"}
STATE_PREFIX = "notify:"
AlertKind = Literal["new", "changed", "reminder", "recovery"]
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: Any) -> timedelta | None:
    """``24h``, ``1d12h``, ``90m``, ``30s``, a number of seconds; 0/None/"never" -> None."""
    if value is None or value is False:
        return None
    if isinstance(value, timedelta):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=float(value)) if value > 0 else None
    text = str(value).strip().lower()
    if text in ("", "0", "never", "off", "no"):
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if text[pos:m.start()].strip():
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
        pos = m.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"'{value}' is not a duration (use e.g. 30m, 24h, 2d)")
    return timedelta(seconds=total) if total > 0 else None


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
        return parse_duration(v)

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


@dataclass
class Alert:
    """One result worth telling a channel about, and why."""

    result: Result
    kind: AlertKind
    client: str
    previous: Status | None = None
    since: datetime | None = None
    quiet: bool = False  # settles state without a message (recovery with recovery: false)

    @property
    def status(self) -> Status:
        return self.result.status

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "kind": self.kind, "client": self.client,
                "previous": self.previous.value if self.previous else None,
                "since": self.since.isoformat() if self.since else None}


def state_key(channel_id: str, result: Result) -> str:
    return f"{STATE_PREFIX}{channel_id}:{result.name or result.check}"


def _ts(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def decide(results: Iterable[Result], history: History, channel_id: str, *,
           min_status: Status = Status.WARN, renotify: timedelta | None = None,
           recovery: bool = True, now: datetime | None = None,
           muted: Callable[[str], bool] = lambda host: False,
           clients: Mapping[str, str] | None = None) -> list[Alert]:
    """What ``channel_id`` should hear about ``results``, from what it was last told.

    A problem (status at least ``min_status``) alerts when it is new or its status
    changed, and again every ``renotify`` while it lasts; a result back below the
    threshold after a told problem is a recovery. SKIPPED results and muted hosts
    change nothing, so a problem still there after the window alerts then.
    """
    now = now or datetime.now(timezone.utc)
    out: list[Alert] = []
    for result in results:
        if result.status is Status.SKIPPED or not result.host or muted(result.host):
            continue
        state = history.get_state(result.host, result.check, state_key(channel_id, result))
        last = _last_status(state)
        told_at = datetime.fromtimestamp(state["at"], tz=timezone.utc) if last else None
        first = datetime.fromtimestamp(state.get("first", state["at"]), tz=timezone.utc) \
            if last else None
        client = (clients or {}).get(result.host, "")
        is_problem = result.status.severity >= min_status.severity
        was_problem = last is not None and last.severity >= min_status.severity
        kind: AlertKind | None = None
        if is_problem and not was_problem:
            kind = "new"
        elif is_problem and last is not result.status:
            kind = "changed"
        elif is_problem and renotify and told_at and now - told_at >= renotify:
            kind = "reminder"
        elif not is_problem and last is not None and last is not Status.OK:
            kind = "recovery"
        if kind is None:
            continue
        out.append(Alert(result, kind, client, previous=last,
                         since=None if kind == "new" else first,
                         quiet=kind == "recovery" and not (recovery and was_problem)))
    return out


def _last_status(state: Any) -> Status | None:
    if not isinstance(state, Mapping) or "status" not in state or "at" not in state:
        return None
    try:
        return Status(state["status"])
    except ValueError:
        return None


def mark_told(history: History, channel_id: str, alerts: Iterable[Alert],
              now: datetime | None = None) -> None:
    """Remember what the channel was told; call only after the message went out."""
    now = now or datetime.now(timezone.utc)
    for alert in alerts:
        r = alert.result
        key = state_key(channel_id, r)
        if alert.kind == "recovery":
            history.set_state(r.host, r.check, key, {"status": Status.OK.value, "at": _ts(now)})
            continue
        first = _ts(alert.since) if alert.kind in ("changed", "reminder") and alert.since \
            else _ts(now)
        history.set_state(r.host, r.check, key,
                          {"status": r.status.value, "at": _ts(now), "first": first})


def group_alerts(alerts: Sequence[Alert], digest: bool) -> list[list[Alert]]:
    """One message per alert, or with ``digest`` one per client (in the run's order)."""
    if not digest:
        return [[a] for a in alerts]
    groups: dict[str, list[Alert]] = {}
    for a in alerts:
        groups.setdefault(a.client, []).append(a)
    return list(groups.values())


def in_maintenance(host: Host | None, now: datetime, mute_in_window: bool | None = True) -> bool:
    """True when alerts for ``host`` are muted: it is inside a maintenance window and
    ``mute_in_window`` (the playbook's; None defers to the host var) says so."""
    if host is None or not host.vars.get("maintenance_windows"):
        return False
    wanted = host.vars.get("mute_in_window") if mute_in_window is None else mute_in_window
    if not wanted:
        return False
    try:
        from upkeeper.engine.windows import muted
    except ImportError:
        log.warning("host %s has maintenance_windows but this upkeeper cannot read them; "
                    "alerts are not muted", host.name)
        return False
    # muted() reads the flag from host vars; the playbook's setting wins here.
    return bool(muted({**host.vars, "mute_in_window": True}, now))


def validate_notify(pb: Playbook, registry: Registry | None = None) -> list[str]:
    """Problems in ``pb.notify`` as ``file:line: message`` (empty when valid).

    With a registry (or the installed plugins when none is given) each channel's
    notifier must exist and its literal params must fit the notifier's model.
    """
    raw = pb.notify
    if raw is None:
        return []
    try:
        data = normalise_notify(raw)
    except ValueError as exc:
        return [_at(pb, ("notify",), f"notify: {exc}")]
    try:
        cfg = NotifyConfig.model_validate(data)
    except ValidationError as exc:
        return [_at(pb, _raw_loc(data, tuple(e["loc"])), f"notify: {_describe(e)}")
                for e in exc.errors()]
    if registry is None:
        from upkeeper.plugins import get_plugin_manager

        registry = get_plugin_manager().registry
    from upkeeper.plugins import UnknownNameError

    problems: list[str] = []
    for chan in cfg.channels:
        try:
            cls = registry.notifier(chan.notifier)
        except UnknownNameError as exc:
            problems.append(_at(pb, chan.source_path, f"notify: {exc}"))
            continue
        try:
            cls.Params.model_validate(chan.params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                if loc and is_templated(chan.params.get(str(loc[0]))):
                    continue  # rendered at send time
                problems.append(_at(pb, (*chan.source_path, *loc),
                                    f"notify: {chan.notifier}: {_describe(err)}"))
    return problems


def _raw_loc(data: Mapping[str, Any], loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """A pydantic error location inside the normalised data -> the playbook key path."""
    if len(loc) >= 2 and loc[0] == "channels" and isinstance(loc[1], int):
        chans = data.get("channels") or []
        if loc[1] < len(chans) and isinstance(chans[loc[1]], Mapping):
            base = tuple(chans[loc[1]].get("source_path", ()))
            rest = loc[3:] if len(loc) > 2 and loc[2] == "params" else loc[2:]
            return (*base, *rest)
    return ("notify", *loc)


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"] if p != "params")
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    if err["type"] == "missing":
        return f"missing required key '{loc}'"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def _at(pb: Playbook, key_path: Sequence[str | int], message: str) -> str:
    line = pb.line_of(tuple(key_path))
    return f"{pb.path}:{line}: {message}" if line else f"{pb.path}: {message}"
