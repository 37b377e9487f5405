"""The scheduler's records and jobs: slot tables in SQLite, job definitions, and the
``schedule`` job whose due times come from the playbook's spec and an injected clock.
"""

from __future__ import annotations

import functools
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
