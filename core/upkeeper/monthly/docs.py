"""Documentation changes in a period, from the as-built snapshots
(:mod:`upkeeper.asbuilt`): the same structural change list ``docs build`` shows, dated by
the day the change was first collected.

Snapshot rows are written only when a host's structure changed, so the days with a new
row in the period are the days something changed; each such day's facts are compared
with the previous day's (at most one comparison per day with changes, not one per
collection). Volatile facts never count. A host whose facts were collected before the
period and not once in it is listed as no longer reporting. Only reads: snapshots are
taken by the after-run step and ``docs build``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from upkeeper.asbuilt.categories import DocCategory, category_table
from upkeeper.asbuilt.changes import Change, compare
from upkeeper.asbuilt.snapshots import docs_at, open_tables
from upkeeper.monthly.fixes import audit_fixes
from upkeeper.monthly.report import LOOKBACK, DocChange, DocsSource, FixesSource

if TYPE_CHECKING:
    from upkeeper.store.history import History

__all__ = ["ReportSources", "asbuilt_changes", "describe", "report_sources"]

UTC = timezone.utc
#: Changes listed per host and day; more read as a count (a new OS release upgrades
#: hundreds of packages at once).
PER_DAY = 12


def describe(change: Change) -> str:
    """One change as a line of the report: ``ports opened tcp/443``."""
    if change.group == "hosts":
        return {"appeared": "new system documented",
                "vanished": "no longer reporting"}.get(change.action, change.action)
    text = f"{change.group}: {change.action} {change.item}"
    if change.action in ("changed", "upgraded", "replaced") and change.before is not None:
        text += f" ({_short(change.before)} → {_short(change.after)})"
    return text


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_short(v)}" if len(value) > 1 else _short(v)
                         for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ", ".join(_short(v) for v in value)
    return "-" if value is None else str(value)


def _days_with_changes(history: History, hosts: Sequence[str], start: float,
                       end: float) -> list[float]:
    """The newest new-row time of each UTC day in ``[start, end)`` with one, sorted."""
    if not hosts:
        return []
    marks = ",".join("?" * len(hosts))
    rows = history.query(
        "SELECT MAX(first_at) FROM asbuilt_snapshots WHERE first_at>=? AND first_at<? AND"
        f" host IN ({marks}) GROUP BY CAST(first_at / 86400 AS INTEGER) ORDER BY 1",
        (start, end, *hosts))
    return [float(r[0]) for r in rows]


def _lines(changes: Iterable[Change], when: datetime) -> list[DocChange]:
    by_host: dict[str, list[Change]] = {}
    for c in changes:
        by_host.setdefault(c.host, []).append(c)
    out: list[DocChange] = []
    for host, mine in sorted(by_host.items()):
        out += [DocChange(host, when, describe(c)) for c in mine[:PER_DAY]]
        if len(mine) > PER_DAY:
            out.append(DocChange(host, when, f"and {len(mine) - PER_DAY} more changes"
                                             " (see the client's documentation)"))
    return out


def asbuilt_changes(history: History, client: str,
                    categories: Iterable[DocCategory] = ()) -> DocsSource | None:
    """A docs source over ``client``'s snapshots, or None when the client has no
    documented hosts (the report then says documentation is not tracked)."""
    open_tables(history)
    if not history.query("SELECT 1 FROM asbuilt_snapshots WHERE client=? LIMIT 1",
                         (client,)):
        return None
    table = category_table(categories)

    def docs(hosts: Sequence[str], start: datetime, end: datetime) -> list[DocChange]:
        lo, hi = start.timestamp(), end.timestamp()
        wanted = set(hosts)
        out: list[DocChange] = []
        before = docs_at(history, lo, client, wanted)
        first = before
        for at in _days_with_changes(history, sorted(wanted), lo, hi):
            after = docs_at(history, at, client, wanted)
            # A host appears or changes here; vanishing is judged once, over the period.
            gone = {i: before[i] for i in before.keys() - after.keys()}
            changed = compare({i: d for i, d in before.items() if i not in gone}, after,
                              table, vanished={})
            out += _lines(changed, datetime.fromtimestamp(at, UTC))
            before = after
        latest = docs_at(history, hi, client, wanted)
        # Seen in the month before the period, not once in it: it stopped reporting.
        silent = {i: d for i, d in first.items() if i in latest
                  and latest[i].collected_at <= lo
                  and d.collected_at > lo - LOOKBACK.total_seconds()}
        out += _lines(compare({}, {}, table, vanished=silent), start)
        return out

    return docs


class ReportSources(NamedTuple):
    """The ``fixes`` and ``docs`` arguments of
    :func:`~upkeeper.monthly.report.build_client_report`."""

    fixes: FixesSource | None
    docs: DocsSource | None


def report_sources(history: History, client: str,
                   categories: Iterable[DocCategory] = ()) -> ReportSources:
    """Fixes from the remediation audit trail and documentation changes from the
    snapshots: one place, so ``upkeeper report --month`` and the dashboard's download
    show the same fixes and changes."""
    return ReportSources(audit_fixes(history), asbuilt_changes(history, client, categories))
