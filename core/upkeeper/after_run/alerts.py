"""Alert policy: which results are worth a message (new problems, changes, reminders and
recoveries), per channel, with the last notified state kept in history across restarts.

An unreachable host is one problem, not one per check: its checks' results are set aside
and a single "host unreachable" result stands for them (see :func:`host_results`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from upkeeper.after_run.text import clean_data, clean_text
from upkeeper.models import Host, Result, RunRecord, Status

if TYPE_CHECKING:
    from upkeeper.store.history import History

log = logging.getLogger("upkeeper.after_run.alerts")

STATE_PREFIX = "notify:"
#: History state key of a person's mute (written by ``upkeeper web``): ``{"until": ts,
#: "by": name, "reason": text}`` under (host, check), or (host, ``MUTE_ALL``) for a host.
MUTE_KEY = "mute"
MUTE_ALL = "*"
#: Details bigger than this (as JSON) are left out of alert bodies, which name their keys
#: instead: an alert is a page, not a data dump (a fact document is 70-300 KB).
MAX_ALERT_DETAILS = 16_384
AlertKind = Literal["new", "changed", "reminder", "recovery", "fixed"]
#: Kinds that tell of something that is no longer a problem.
GOOD_KINDS = ("recovery", "fixed")
#: Check and result name of the results that stand for a whole host's reachability.
HOST_CHECK = "upkeeper.host"
HOST_NAME = "host"
#: Check name of the "remediation exhausted" results (one per quarantine).
REMEDIATION_CHECK = "upkeeper.remediation"


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

    @property
    def unreachable(self) -> bool:
        """True for the alert that stands for a whole host (unreachable or back)."""
        return self.result.check == HOST_CHECK

    def to_dict(self) -> dict[str, Any]:
        """JSON form for webhook bodies; texts from hosts are cleaned of control
        characters and escape sequences."""
        out = {**self.result.to_dict(), "kind": self.kind, "client": self.client,
               "previous": self.previous.value if self.previous else None,
               "since": self.since.isoformat() if self.since else None}
        for key in ("host", "check", "name", "client"):
            out[key] = clean_text(out[key], single_line=True)
        out["summary"] = clean_text(out["summary"])
        out["details"] = _bounded_details(clean_data(out["details"]))
        return out


def _bounded_details(details: Any) -> Any:
    import json

    size = len(json.dumps(details, default=str))
    if size <= MAX_ALERT_DETAILS:
        return details
    keys = sorted(map(str, details))[:50] if isinstance(details, Mapping) else []
    return {"omitted": f"details of {size} bytes are in the history, not in alerts",
            "keys": keys}


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
    threshold after a told problem is a recovery. SKIPPED results, muted hosts and
    results a person muted until later (:func:`muted_until`) change nothing, so a
    problem still there after the window or the mute alerts then.
    """
    now = now or datetime.now(timezone.utc)
    mutes = active_mutes(history, now)
    out: list[Alert] = []
    for result in results:
        if result.status is Status.SKIPPED or not result.host or muted(result.host):
            continue
        if (result.host, result.check) in mutes or (result.host, MUTE_ALL) in mutes:
            continue
        state = history.get_state(result.host, result.check, state_key(channel_id, result))
        last = _last_status(state)
        told_at = datetime.fromtimestamp(state["at"], tz=timezone.utc) if last else None
        first = datetime.fromtimestamp(state.get("first", state["at"]), tz=timezone.utc) \
            if last else None
        client = (clients or {}).get(result.host, "")
        was = _fixed_from(result)
        if was is not None and was.severity >= min_status.severity:
            # Fixed and verified in this run: told as fixed, not as a problem.
            out.append(Alert(result, "fixed", client, previous=was))
            continue
        if result.check == REMEDIATION_CHECK and result.status.severity >= min_status.severity:
            out.append(Alert(result, "new", client))  # each one stands for one quarantine
            continue
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


def active_mutes(history: History, now: datetime) -> dict[tuple[str, str], datetime]:
    """(host, check or ``MUTE_ALL``) -> end of every person's mute in force at ``now``
    (one read for a whole run)."""
    import json

    out = {}
    for row in history.query("SELECT host, check_name, value FROM state WHERE key=?",
                             (MUTE_KEY,)):
        try:
            mute = json.loads(row[2])
        except ValueError:
            continue
        if isinstance(mute, Mapping) and isinstance(mute.get("until"), (int, float)) \
                and mute["until"] > _ts(now):
            out[(row[0], row[1])] = datetime.fromtimestamp(mute["until"], tz=timezone.utc)
    return out


def muted_until(history: History, host: str, check: str, now: datetime) -> datetime | None:
    """When a person's mute of ``check`` on ``host`` (or of the whole host) ends, if one
    is in force at ``now``."""
    mutes = active_mutes(history, now)
    ends = [mutes[key] for key in ((host, check), (host, MUTE_ALL)) if key in mutes]
    return max(ends) if ends else None


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
        if alert.kind in GOOD_KINDS:
            history.set_state(r.host, r.check, key, {"status": Status.OK.value, "at": _ts(now)})
            continue
        first = _ts(alert.since) if alert.kind in ("changed", "reminder") and alert.since \
            else _ts(now)
        history.set_state(r.host, r.check, key,
                          {"status": r.status.value, "at": _ts(now), "first": first})


def group_alerts(alerts: Sequence[Alert], digest: bool) -> list[list[Alert]]:
    """One message per alert, or with ``digest`` one per client (in the run's order).

    Unreachable hosts are always told one message per client: ten unreachable hosts of
    one client are one message, not ten (and not one per check).
    """
    groups: dict[tuple[str, str], list[Alert]] = {}
    out: list[list[Alert]] = []
    for a in alerts:
        if not (digest or a.unreachable):
            out.append([a])
            continue
        key = ("digest" if digest else "hosts", a.client)
        if key not in groups:
            groups[key] = []
            out.append(groups[key])
        groups[key].append(a)
    return out


def _fixed_from(result: Result) -> Status | None:
    fix = result.details.get("remediation") if isinstance(result.details, Mapping) else None
    if not isinstance(fix, Mapping) or fix.get("outcome") != "fixed":
        return None
    try:
        return Status(fix.get("was"))
    except ValueError:
        return None


def with_fix_outcomes(run: RunRecord, results: list[Result]) -> list[Result]:
    """``results`` as alerts should see them after the run's fix pass
    (``run.meta["remediation"]``): a failing result whose fix verified is replaced by
    the check's re-run marked fixed, and each "remediation exhausted" becomes one CRIT
    result of :data:`REMEDIATION_CHECK`."""
    outcomes = run.meta.get("remediation") or []
    if not outcomes:
        return results
    fixed = {(o["host"], o["name"]): o for o in outcomes if o.get("outcome") == "fixed"}
    out: list[Result] = []
    for r in results:
        o = fixed.get((r.host, r.name))
        after = (o or {}).get("after") or []
        if o is None or not after:
            out.append(r)
            continue
        # The subject already says FIXED; the outcome's summary starts "fixed: ".
        what = str(o["summary"]).removeprefix("fixed: ")
        out.append(Result(Status.OK, f"{what} (was {r.status.value}: {r.summary})",
                          host=r.host, check=r.check, name=r.name, started=r.started,
                          details={"remediation": {"outcome": "fixed", "fix": o["fix"],
                                                   "was": r.status.value,
                                                   "plan": (o.get("plan") or {}).get(
                                                       "summary", "")},
                                   "after": after[0].get("details")}))
    for o in outcomes:
        if o.get("outcome") == "exhausted":
            out.append(Result(Status.CRIT, o["summary"], host=o["host"],
                              check=REMEDIATION_CHECK, name=f"fix {o['fix']} ({o['name']})",
                              started=run.started, details={"fix": o["fix"]}))
    return out


def host_results(run: RunRecord) -> tuple[list[Result], list[Result]]:
    """(the results alerts are decided on, one reachability result per host).

    Results an unreachable host's transport failure produced are left out: one ``host``
    result ``unreachable: <reason>`` (UNKNOWN, or CRIT for a changed host key) stands
    for them.
    Every other host that answered gets an OK reachability result, so a host back after
    being unreachable is told as a recovery. Their state stays as it was, so a problem
    that was told before the host went away is not told again when it comes back.
    """
    checks: list[Result] = []
    answered: dict[str, bool] = {}
    for r in run.results:
        lost = run.unreachable.get(r.host)
        if lost is not None and (r.name or r.check) in lost.checks:
            continue
        checks.append(r)
        if r.status is not Status.SKIPPED:
            answered[r.host] = True
    hosts: list[Result] = []
    seen = dict.fromkeys(r.host for r in run.results)
    for host in seen:
        lost = run.unreachable.get(host)
        if lost is not None:
            hosts.append(Result(lost.status, f"unreachable: {lost.reason}", host=host,
                                check=HOST_CHECK, name=HOST_NAME, started=run.started))
        elif answered.get(host):
            hosts.append(Result(Status.OK, "reachable", host=host, check=HOST_CHECK,
                                name=HOST_NAME, started=run.started))
    return with_fix_outcomes(run, checks), hosts


def in_maintenance(host: Host | None, now: datetime, mute_in_window: bool | None = True) -> bool:
    """True when alerts for ``host`` are muted: it is inside a maintenance window and
    ``mute_in_window`` (the playbook's; None defers to the host var) says so."""
    if host is None or not host.vars.get("maintenance_windows"):
        return False
    wanted = host.vars.get("mute_in_window") if mute_in_window is None else mute_in_window
    if not wanted:
        return False
    from upkeeper.engine.windows import muted

    # muted() reads the flag from host vars; the playbook's setting wins here.
    return bool(muted({**host.vars, "mute_in_window": True}, now))
