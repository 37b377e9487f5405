"""The scheduler's records and jobs: slot tables in SQLite, job definitions, and the
``schedule`` job whose due times come from the playbook's spec and an injected clock.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import schedule

from upkeeper.schedule.specs import ScheduleSpec, jitter_offset, next_due
from upkeeper.store.history import History

if TYPE_CHECKING:
    from upkeeper.models import RunRecord

UTC = timezone.utc

SCHEMA = """
CREATE TABLE IF NOT EXISTS schedule_slots (
    job TEXT NOT NULL,
    schedule INTEGER NOT NULL,
    due REAL NOT NULL,
    spec TEXT NOT NULL,
    playbook TEXT NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT,
    planned REAL,
    recorded REAL NOT NULL,
    started REAL,
    finished REAL,
    status TEXT,
    reason TEXT,
    daemon TEXT,
    count INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (job, schedule, due)
);
CREATE INDEX IF NOT EXISTS schedule_slots_state ON schedule_slots(state);
CREATE INDEX IF NOT EXISTS schedule_slots_recorded ON schedule_slots(recorded);
CREATE TABLE IF NOT EXISTS schedule_cursors (
    job TEXT NOT NULL,
    schedule INTEGER NOT NULL,
    spec TEXT NOT NULL,
    considered REAL NOT NULL,
    PRIMARY KEY (job, schedule)
);
CREATE TABLE IF NOT EXISTS schedule_daemons (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    interval REAL NOT NULL,
    stopped REAL,
    stop_reason TEXT,
    info TEXT NOT NULL DEFAULT '{}'
);
"""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(dt: datetime) -> float:
    return dt.timestamp()


@dataclass
class JobDef:
    """A scheduled playbook as the daemon sees it. ``key`` identifies it across restarts
    (its file, relative to the playbooks dir); ``payload`` is what ``run_fn`` gets."""

    key: str
    name: str
    specs: list[ScheduleSpec]
    payload: Any = None


@dataclass
class LoadResult:
    """What a loader found: good jobs, and the keys of files that failed (with why)."""

    jobs: dict[str, JobDef]
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Slot:
    """One due occurrence of one schedule: the unit of at-most-once."""

    job: str
    index: int
    due: datetime
    planned: datetime
    run_id: str = ""
    stop: threading.Event = field(default_factory=threading.Event, repr=False)


RunFn = Callable[[JobDef, Slot, threading.Event], "RunRecord | None"]
Loader = Callable[[], LoadResult]


def ensure_schema(history: History) -> None:
    with history.transaction() as db:
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                db.execute(stmt)


class SlotJob(schedule.Job):
    """A ``schedule`` job whose times come from the spec and the injected clock.

    The library's own arithmetic counts from "now" in naive local time (and wants pytz
    for zones); slots must instead be the same instants after a restart, so ``next_run``
    is computed by :func:`upkeeper.schedule.specs.next_due` and compared with ``clock()``.
    """

    def __init__(self, sched: schedule.Scheduler, clock: Callable[[], datetime],
                 job: JobDef, spec: ScheduleSpec, cursor: datetime,
                 on_due: Callable[[SlotJob], datetime | None]) -> None:
        super().__init__(spec.interval, sched)
        self.unit = spec.unit
        self.clock, self.jobdef, self.spec, self.cursor = clock, job, spec, cursor
        self.tags.add(job.key)
        self.job_func = functools.partial(on_due, self)
        self.next_due: datetime = cursor
        self._schedule_next_run()
        sched.jobs.append(self)

    @property
    def should_run(self) -> bool:
        assert self.next_run is not None
        return bool(self.clock() >= self.next_run)

    def run(self) -> Any:
        assert self.job_func is not None
        retry = self.job_func()
        self.last_run = self.clock()
        if retry is not None:
            self.next_run = retry  # the cursor did not move: the same slots come back
        else:
            self._schedule_next_run()
        return None

    def _schedule_next_run(self) -> None:
        self.next_due = next_due(self.spec, self.cursor)
        self.next_run = self.next_due + jitter_offset(self.spec, self.jobdef.key, self.next_due)

    def __repr__(self) -> str:
        return (f"<SlotJob {self.jobdef.key}#{self.spec.index} {self.spec.describe()}"
                f" next {self.next_run}>")

    __str__ = __repr__


ACTIVE_STATES = ("queued", "running")

INSERT_SLOT = ("INSERT OR IGNORE INTO schedule_slots (job, schedule, due, spec, playbook,"
               " state, run_id, planned, recorded, reason, daemon, count)"
               " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")


def recover_slots(history: History, daemon_id: str, now: datetime) -> int:
    """Slots other daemons left queued or running never ran to the end: record them as
    interrupted (never run them again), close their history runs, and mark daemons that
    never stopped cleanly. Returns how many slots were recovered."""
    rows = history.query(
        "SELECT run_id, state FROM schedule_slots WHERE state IN (?,?) AND daemon != ?",
        (*ACTIVE_STATES, daemon_id))
    if rows:
        with history.transaction() as db:
            db.execute("UPDATE schedule_slots SET state='interrupted', finished=?,"
                       " reason=CASE state WHEN 'queued' THEN"
                       " 'daemon stopped before the run started' ELSE"
                       " 'daemon stopped during the run (killed or crashed)' END"
                       " WHERE state IN (?,?) AND daemon != ?",
                       (_ts(now), *ACTIVE_STATES, daemon_id))
            db.executemany("UPDATE runs SET interrupted=1, finished=? WHERE id=?"
                           " AND finished IS NULL",
                           [(_ts(now), r["run_id"]) for r in rows if r["run_id"]])
    with history.transaction() as db:
        db.execute("UPDATE schedule_daemons SET stopped=heartbeat, stop_reason="
                   "'no clean shutdown (killed or crashed)' WHERE stopped IS NULL"
                   " AND id != ?", (daemon_id,))
    return len(rows)


def stored_cursor(history: History, key: str, spec: ScheduleSpec, now: datetime) -> datetime:
    """Where slot enumeration resumes: the last slot considered under the same spec,
    else now (a new or changed schedule has nothing to catch up)."""
    rows = history.query("SELECT spec, considered FROM schedule_cursors WHERE job=?"
                         " AND schedule=?", (key, spec.index))
    if rows and rows[0]["spec"] == spec.fingerprint:
        return datetime.fromtimestamp(rows[0]["considered"], tz=UTC)
    save_cursor(history, key, spec, now)
    return now


def save_cursor(history: History, key: str, spec: ScheduleSpec, when: datetime) -> None:
    with history.transaction() as db:
        db.execute("INSERT INTO schedule_cursors (job, schedule, spec, considered)"
                   " VALUES (?,?,?,?) ON CONFLICT(job, schedule) DO UPDATE SET"
                   " spec=excluded.spec, considered=excluded.considered",
                   (key, spec.index, spec.fingerprint, _ts(when)))


def finish_slot(history: History, run_id: str, state: str, status: str | None,
                reason: str | None, now: datetime) -> None:
    with history.transaction() as db:
        db.execute("UPDATE schedule_slots SET state=?, status=?, finished=?, reason="
                   " CASE WHEN reason IS NULL THEN ? ELSE reason || '; ' || ? END"
                   " WHERE run_id=?", (state, status, _ts(now), reason, reason, run_id))


def interrupt_slot(history: History, run_id: str, reason: str, now: datetime) -> None:
    with history.transaction() as db:
        db.execute("UPDATE schedule_slots SET state='interrupted', reason=?, finished=?"
                   " WHERE run_id=? AND state IN (?,?)",
                   (reason, _ts(now), run_id, *ACTIVE_STATES))
        db.execute("UPDATE runs SET interrupted=1, finished=? WHERE id=? AND"
                   " finished IS NULL", (_ts(now), run_id))


def live_daemons(history: History, exclude: str) -> list[dict[str, Any]]:
    """Daemons recorded as not stopped, with their process identity (if recorded)."""
    rows = history.query("SELECT id, pid, hostname, info FROM schedule_daemons WHERE"
                         " stopped IS NULL AND id != ?", (exclude,))
    out = []
    for r in rows:
        try:
            info = json.loads(r["info"] or "{}")
        except ValueError:
            info = {}
        out.append({"id": r["id"], "pid": r["pid"], "host": r["hostname"],
                    "process": info.get("process") if isinstance(info, dict) else None})
    return out
