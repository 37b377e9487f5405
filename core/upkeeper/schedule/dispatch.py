"""Turning due slots into runs: the schedule of every loaded playbook, the at-most-once
claim of each slot, missed and skipped slots, and the worker threads that run them.

:class:`SlotDispatcher` is the part of the daemon a test drives with a fake clock; the
daemon (:mod:`upkeeper.schedule.daemon`) adds the loop, signals, lock and heartbeat.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import schedule

from upkeeper.models import RunRecord
from upkeeper.schedule.slots import (
    INSERT_SLOT,
    JobDef,
    Loader,
    LoadResult,
    RunFn,
    Slot,
    SlotJob,
    _ts,
    finish_slot,
    interrupt_slot,
    save_cursor,
    stored_cursor,
    utcnow,
)
from upkeeper.schedule.specs import jitter_offset, slots_between
from upkeeper.store.history import History

log = logging.getLogger("upkeeper.serve")

#: Individually recorded missed slots per schedule and pass; more are counted in one row.
MAX_MISSED_ROWS = 1000


class SlotDispatcher:
    """Schedules, claims and runs slots (see the module doc)."""

    def __init__(self, history: History, loader: Loader, run_fn: RunFn, *,
                 clock: Callable[[], datetime] = utcnow, workers: int = 4,
                 catch_up: float = 3600.0, misfire_grace: float = 30.0) -> None:
        self.history, self.loader, self.run_fn, self.clock = history, loader, run_fn, clock
        self.workers, self.catch_up, self.misfire_grace = workers, catch_up, misfire_grace
        self.id = ""
        self.sched = schedule.Scheduler()
        self.jobs: dict[str, JobDef] = {}
        self.started_at = clock()
        self.last_error: str | None = None
        self.stats = {"run": 0, "skipped": 0, "missed": 0, "failed": 0, "interrupted": 0}
        self._queue: queue.Queue[tuple[JobDef, Slot] | None] = queue.Queue()
        self._active: dict[str, Slot] = {}
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def _start_workers(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, name=f"upkeeper-serve-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def _load(self) -> LoadResult:
        try:
            return self.loader()
        except Exception as exc:  # a loader bug must not kill a running daemon
            log.exception("loading playbooks failed")
            return LoadResult(jobs={}, errors={"*": str(exc)})

    def _apply(self, loaded: LoadResult, now: datetime) -> None:
        """Replace the schedule with ``loaded``; a file that failed keeps its old version."""
        jobs = dict(loaded.jobs)
        for key, err in loaded.errors.items():
            log.error("%s", err)
            self.last_error = err
            if key in self.jobs:
                log.error("%s: keeping the previously loaded version", key)
                jobs[key] = self.jobs[key]
            elif key == "*":
                jobs.update(self.jobs)
        old = {(j.jobdef.key, j.spec.index): j for j in self.sched.jobs
               if isinstance(j, SlotJob)}
        self.sched.clear()
        for job in list(jobs.values()):
            try:
                for spec in job.specs:
                    prev = old.get((job.key, spec.index))
                    if prev is not None and prev.spec.fingerprint == spec.fingerprint:
                        cursor = prev.cursor
                    else:
                        cursor = stored_cursor(self.history, job.key, spec, now)
                    SlotJob(self.sched, self.clock, job, spec, cursor, self._on_due)
            except Exception as exc:  # one bad playbook never stops the others
                self.last_error = f"{job.key}: cannot be scheduled: {exc}"
                log.error("%s", self.last_error)
                self.sched.jobs = [j for j in self.sched.jobs
                                   if not (isinstance(j, SlotJob) and j.jobdef is job)]
                del jobs[job.key]
        self.jobs = jobs

    def idle_seconds(self) -> float | None:
        runs = [j.next_run for j in self.sched.jobs if j.next_run is not None]
        return (min(runs) - self.clock()).total_seconds() if runs else None

    def _on_due(self, job: SlotJob) -> datetime | None:
        """Handle the slots now due for ``job``; on failure, the retry time."""
        now = self.clock()
        try:
            self._handle_due(job, now)
        except Exception as exc:  # e.g. the database is locked: retry shortly, keep going
            self.last_error = f"{job.jobdef.key}: {exc}"
            log.exception("scheduling %s failed; retrying in 5s", job.jobdef.key)
            return now + timedelta(seconds=5)
        return None

    def _handle_due(self, job: SlotJob, now: datetime) -> None:
        spec, key = job.spec, job.jobdef.key
        dues, total = slots_between(spec, job.cursor, now, MAX_MISSED_ROWS + 1)
        ready = [(d, d + jitter_offset(spec, key, d)) for d in dues]
        ready = [(d, p) for d, p in ready if p <= now]
        if not ready:
            return
        latest, planned = ready[-1]
        uncounted = total - len(dues)
        down = planned < self.started_at
        catch_up = self.catch_up if spec.catch_up is None else spec.catch_up
        allowed = catch_up if down else max(catch_up, self.misfire_grace)
        late = (now - planned).total_seconds()
        while_down = [d for d, p in ready[:-1] if p < self.started_at]
        behind = [d for d, p in ready[:-1] if p >= self.started_at]
        superseded = f"superseded by the slot due {latest.isoformat()}"
        # Slots past the row limit are the oldest: counted with the first group of rows.
        if while_down:
            self._record_missed(job, while_down, uncounted,
                                f"daemon was not running; {superseded}")
            uncounted = 0
        if behind:
            self._record_missed(job, behind, uncounted, f"daemon fell behind; {superseded}")
        if late > allowed and late > 0:
            self._record_missed(job, [latest], 0,
                                f"{'daemon was not running' if down else 'daemon fell behind'}:"
                                f" {int(late)}s late, beyond catch_up {int(catch_up)}s")
        else:
            note = (f"caught up {late:.0f}s late (due while the daemon was down)" if down
                    else f"started {late:.0f}s late" if late > self.misfire_grace else None)
            self._dispatch(job, latest, planned, note)
        job.cursor = latest
        save_cursor(self.history, key, spec, latest)

    def _row(self, job: SlotJob, due: datetime, state: str, now: datetime, **kw: Any
             ) -> tuple[Any, ...]:
        return (job.jobdef.key, job.spec.index, _ts(due), job.spec.fingerprint,
                job.jobdef.name, state, kw.get("run_id"), kw.get("planned"), _ts(now),
                kw.get("reason"), self.id, kw.get("count", 1))

    def _record_missed(self, job: SlotJob, dues: list[datetime], uncounted: int,
                       reason: str) -> None:
        now = self.clock()
        rows = [self._row(job, d, "missed", now, reason=reason) for d in dues]
        if uncounted and dues:
            rows[0] = self._row(job, dues[0], "missed", now, count=uncounted + 1,
                                reason=f"{reason} ({uncounted} earlier slot(s) counted here)")
        with self.history.transaction() as db:
            db.executemany(INSERT_SLOT, rows)
        n = len(dues) + uncounted
        self.stats["missed"] += n
        log.warning("%s#%d: %d slot(s) missed (%s)", job.jobdef.key, job.spec.index, n, reason)

    def _dispatch(self, job: SlotJob, due: datetime, planned: datetime,
                  note: str | None) -> None:
        key, now = job.jobdef.key, self.clock()
        with self._cond:
            busy = self._active.get(key)
        if busy is not None:
            reason = (f"previous run {busy.run_id} (slot due {busy.due.isoformat()})"
                      " still going")
            with self.history.transaction() as db:
                db.execute(INSERT_SLOT, self._row(job, due, "skipped", now, reason=reason,
                                                   planned=_ts(planned)))
            self.stats["skipped"] += 1
            log.warning("%s#%d slot %s skipped: %s", key, job.spec.index, due.isoformat(),
                        reason)
            return
        slot = Slot(job=key, index=job.spec.index, due=due, planned=planned,
                    run_id=_run_id(now))
        # The claim is its own committed transaction before anything runs: a crash after
        # this point loses the slot, it never runs it twice.
        with self.history.transaction() as db:
            cur = db.execute(INSERT_SLOT, self._row(
                job, due, "queued", now, run_id=slot.run_id, planned=_ts(planned),
                reason=note))
            claimed = cur.rowcount == 1
        if not claimed:
            log.info("%s#%d slot %s was already recorded: not running it again", key,
                     job.spec.index, due.isoformat())
            return
        with self._cond:
            self._active[key] = slot
        log.info("%s#%d slot %s: run %s queued", key, job.spec.index, due.isoformat(),
                 slot.run_id)
        self._queue.put((job.jobdef, slot))

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._execute(*item)

    def _execute(self, job: JobDef, slot: Slot) -> None:
        try:
            with self.history.transaction() as db:
                cur = db.execute("UPDATE schedule_slots SET state='running', started=?"
                                 " WHERE run_id=? AND state='queued'",
                                 (_ts(self.clock()), slot.run_id))
                if cur.rowcount != 1:
                    return  # interrupted by a stop before it could start
            log.info("run %s of %s started", slot.run_id, job.key)
            try:
                record = self.run_fn(job, slot, slot.stop)
            except Exception as exc:
                log.exception("run %s of %s failed", slot.run_id, job.key)
                self.last_error = f"{job.key}: {type(exc).__name__}: {exc}"
                self.stats["failed"] += 1
                self._finish(slot, "failed", None, f"{type(exc).__name__}: {exc}")
                return
            state = "interrupted" if record is not None and record.interrupted else "done"
            status = record.status.value if record is not None else None
            counts = _counts(record)
            self.stats["interrupted" if state == "interrupted" else "run"] += 1
            self._finish(slot, state, status, counts)
            log.info("run %s of %s finished: %s %s", slot.run_id, job.key, status or state,
                     counts or "")
        except Exception:  # recording failed (database gone?): log, keep the worker alive
            log.exception("recording run %s failed", slot.run_id)
        finally:
            with self._cond:
                if self._active.get(job.key) is slot:
                    del self._active[job.key]
                self._cond.notify_all()

    def _finish(self, slot: Slot, state: str, status: str | None, reason: str | None) -> None:
        finish_slot(self.history, slot.run_id, state, status, reason, self.clock())

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or running (tests)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def running(self) -> list[Slot]:
        with self._cond:
            return list(self._active.values())

    def _interrupt(self, slot: Slot, reason: str) -> None:
        interrupt_slot(self.history, slot.run_id, reason, self.clock())
        self.stats["interrupted"] += 1
        with self._cond:
            if self._active.get(slot.job) is slot and not slot.stop.is_set():
                del self._active[slot.job]
            self._cond.notify_all()


def _run_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def _counts(record: RunRecord | None) -> str | None:
    if record is None:
        return None
    counts: Mapping[str, int] = record.counts()
    return " ".join(f"{k}={v}" for k, v in counts.items() if v) or "no results"
