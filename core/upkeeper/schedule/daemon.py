"""The ``upkeeper serve`` daemon: playbook schedules on a ``schedule.Scheduler`` instance,
a bounded worker pool, and at-most-once slots recorded in SQLite before each run.

The clock is injected, so tests drive :meth:`Daemon.tick` through days in milliseconds.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

import schedule

from upkeeper.models import RunRecord
from upkeeper.schedule.slots import (
    SCHEMA,
    JobDef,
    Loader,
    LoadResult,
    RunFn,
    Slot,
    SlotJob,
    _ts,
    ensure_schema,
    utcnow,
)
from upkeeper.schedule.specs import ScheduleSpec, jitter_offset, slots_between
from upkeeper.store.history import History

__all__ = ["SCHEMA", "Daemon", "JobDef", "LoadResult", "Slot", "SlotJob", "ensure_schema"]

log = logging.getLogger("upkeeper.serve")

UTC = timezone.utc
#: Individually recorded missed slots per schedule and pass; more are counted in one row.
MAX_MISSED_ROWS = 1000
ACTIVE_STATES = ("queued", "running")

class Daemon:
    """Runs scheduled playbooks until asked to stop.

    :param loader: returns the current jobs (called at start and on reload).
    :param run_fn: runs one slot; its exceptions are recorded, never fatal.
    :param catch_up: seconds a slot missed while the daemon was down may still run
        late (the newest one only); 0 disables.
    :param misfire_grace: lateness tolerated while running (load, clock steps).
    :param grace: seconds running jobs get to finish on stop before being interrupted.
    """

    def __init__(self, history: History, loader: Loader, run_fn: RunFn, *,
                 clock: Callable[[], datetime] = utcnow, workers: int = 4,
                 catch_up: float = 3600.0, misfire_grace: float = 30.0,
                 grace: float = 300.0, heartbeat_interval: float = 15.0,
                 health_file: str | Path | None = None,
                 lock_path: str | Path | None = None) -> None:
        self.history, self.loader, self.run_fn, self.clock = history, loader, run_fn, clock
        self.workers, self.catch_up, self.misfire_grace = workers, catch_up, misfire_grace
        self.grace, self.heartbeat_interval = grace, heartbeat_interval
        self.health_file = Path(health_file) if health_file else None
        self.lock_path = Path(lock_path) if lock_path else None
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
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
        self._reload = threading.Event()
        self._wake = threading.Event()
        self._stop_reason = "stopped"
        self._next_beat = 0.0
        self._lock_file: IO[str] | None = None

    def start(self) -> None:
        """Take the lock, recover from a crash, load jobs, start workers."""
        self._take_lock()
        ensure_schema(self.history)
        self.started_at = now = self.clock()
        with self.history.transaction() as db:
            db.execute("INSERT INTO schedule_daemons (id, pid, hostname, started, heartbeat,"
                       " interval) VALUES (?,?,?,?,?,?)",
                       (self.id, os.getpid(), socket.gethostname(), _ts(now), _ts(now),
                        self.heartbeat_interval))
        self._recover(now)
        self._apply(self._load(), now)
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, name=f"upkeeper-serve-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("serve started: %d scheduled playbook(s), %d worker(s), catch-up %ss",
                 len(self.jobs), self.workers, int(self.catch_up))
        self.heartbeat(force=True)

    def _take_lock(self) -> None:
        if self.lock_path is None:
            return
        try:
            import fcntl
        except ImportError:  # Windows: one service instance is the service manager's job
            return
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a+")  # noqa: SIM115 - held for the daemon's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            other = fh.read().strip() or "unknown pid"
            fh.close()
            raise RuntimeError(f"another upkeeper serve ({other}) holds {self.lock_path}"
                               ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self._lock_file = fh

    def _recover(self, now: datetime) -> None:
        """Slots a previous daemon left queued or running never ran to the end: record
        them as interrupted (never run them again) and close their history runs."""
        rows = self.history.query(
            "SELECT run_id, state FROM schedule_slots WHERE state IN (?,?) AND daemon != ?",
            (*ACTIVE_STATES, self.id))
        if rows:
            with self.history.transaction() as db:
                db.execute("UPDATE schedule_slots SET state='interrupted', finished=?,"
                           " reason=CASE state WHEN 'queued' THEN"
                           " 'daemon stopped before the run started' ELSE"
                           " 'daemon stopped during the run (killed or crashed)' END"
                           " WHERE state IN (?,?) AND daemon != ?",
                           (_ts(now), *ACTIVE_STATES, self.id))
                db.executemany("UPDATE runs SET interrupted=1, finished=? WHERE id=?"
                               " AND finished IS NULL",
                               [(_ts(now), r["run_id"]) for r in rows if r["run_id"]])
            log.warning("recovered %d slot(s) left running by a previous daemon: marked"
                        " interrupted, not run again", len(rows))
        with self.history.transaction() as db:
            db.execute("UPDATE schedule_daemons SET stopped=heartbeat, stop_reason="
                       "'no clean shutdown (killed or crashed)' WHERE stopped IS NULL"
                       " AND id != ?", (self.id,))

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
        for job in jobs.values():
            for spec in job.specs:
                prev = old.get((job.key, spec.index))
                if prev is not None and prev.spec.fingerprint == spec.fingerprint:
                    cursor = prev.cursor
                else:
                    cursor = self._stored_cursor(job.key, spec, now)
                SlotJob(self.sched, self.clock, job, spec, cursor, self._on_due)
        self.jobs = jobs

    def _stored_cursor(self, key: str, spec: ScheduleSpec, now: datetime) -> datetime:
        """Where slot enumeration resumes: the last slot considered under the same spec,
        else now (a new or changed schedule has nothing to catch up)."""
        rows = self.history.query("SELECT spec, considered FROM schedule_cursors WHERE job=?"
                                  " AND schedule=?", (key, spec.index))
        if rows and rows[0]["spec"] == spec.fingerprint:
            return datetime.fromtimestamp(rows[0]["considered"], tz=UTC)
        self._save_cursor(key, spec, now)
        return now

    def _save_cursor(self, key: str, spec: ScheduleSpec, when: datetime) -> None:
        with self.history.transaction() as db:
            db.execute("INSERT INTO schedule_cursors (job, schedule, spec, considered)"
                       " VALUES (?,?,?,?) ON CONFLICT(job, schedule) DO UPDATE SET"
                       " spec=excluded.spec, considered=excluded.considered",
                       (key, spec.index, spec.fingerprint, _ts(when)))

    def reload(self) -> None:
        log.info("reloading playbooks and inventories")
        self._apply(self._load(), self.clock())
        log.info("reloaded: %d scheduled playbook(s)", len(self.jobs))
        self.heartbeat(force=True)

    def request_reload(self) -> None:
        self._reload.set()
        self._wake.set()

    def request_stop(self, reason: str = "stopped") -> None:
        self._stop_reason = reason
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def tick(self) -> None:
        """Handle a pending reload, start what is due, beat the heart."""
        if self._reload.is_set():
            self._reload.clear()
            self.reload()
        if not self._stop.is_set():
            self.sched.run_pending()
        self.heartbeat()

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
        self._save_cursor(key, spec, latest)

    def _row(self, job: SlotJob, due: datetime, state: str, now: datetime, **kw: Any
             ) -> tuple[Any, ...]:
        return (job.jobdef.key, job.spec.index, _ts(due), job.spec.fingerprint,
                job.jobdef.name, state, kw.get("run_id"), kw.get("planned"), _ts(now),
                kw.get("reason"), self.id, kw.get("count", 1))

    _INSERT = ("INSERT OR IGNORE INTO schedule_slots (job, schedule, due, spec, playbook,"
               " state, run_id, planned, recorded, reason, daemon, count)"
               " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")

    def _record_missed(self, job: SlotJob, dues: list[datetime], uncounted: int,
                       reason: str) -> None:
        now = self.clock()
        rows = [self._row(job, d, "missed", now, reason=reason) for d in dues]
        if uncounted and dues:
            rows[0] = self._row(job, dues[0], "missed", now, count=uncounted + 1,
                                reason=f"{reason} ({uncounted} earlier slot(s) counted here)")
        with self.history.transaction() as db:
            db.executemany(self._INSERT, rows)
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
                db.execute(self._INSERT, self._row(job, due, "skipped", now, reason=reason,
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
            cur = db.execute(self._INSERT, self._row(
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
        with self.history.transaction() as db:
            db.execute("UPDATE schedule_slots SET state=?, status=?, finished=?, reason="
                       " CASE WHEN reason IS NULL THEN ? ELSE reason || '; ' || ? END"
                       " WHERE run_id=?", (state, status, _ts(self.clock()), reason, reason,
                                           slot.run_id))

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

    def heartbeat(self, force: bool = False) -> None:
        """Record liveness and the schedule (``upkeeper status`` reads it)."""
        mono = time.monotonic()
        if not force and mono < self._next_beat:
            return
        self._next_beat = mono + self.heartbeat_interval
        now = self.clock()
        info = self.snapshot(now)
        try:
            with self.history.transaction() as db:
                db.execute("UPDATE schedule_daemons SET heartbeat=?, info=? WHERE id=?",
                           (_ts(now), json.dumps(info, default=str), self.id))
            if self.health_file:
                tmp = self.health_file.with_suffix(".tmp")
                tmp.write_text(json.dumps({"heartbeat": now.isoformat(), **info},
                                          default=str, indent=1))
                os.replace(tmp, self.health_file)
        except Exception as exc:  # a missed beat shows as staleness; the daemon goes on
            log.error("heartbeat failed: %s", exc)

    def snapshot(self, now: datetime) -> dict[str, Any]:
        jobs = [{"job": j.jobdef.key, "playbook": j.jobdef.name, "schedule": j.spec.index,
                 "every": j.spec.describe(),
                 "next_due": j.next_due.isoformat() if j.next_due else None,
                 "next_run": j.next_run.isoformat() if j.next_run else None}
                for j in sorted((j for j in self.sched.jobs if isinstance(j, SlotJob)),
                                key=lambda j: (j.jobdef.key, j.spec.index))]
        return {"daemon": self.id, "pid": os.getpid(), "now": now.isoformat(),
                "started": self.started_at.isoformat(), "jobs": jobs,
                "running": [{"job": s.job, "run_id": s.run_id, "due": s.due.isoformat()}
                            for s in self.running()],
                "queued": self._queue.qsize(), "stats": dict(self.stats),
                "last_error": self.last_error}

    def serve(self, max_runtime: float | None = None) -> int:
        """Start, loop until stopped (signal or ``max_runtime`` seconds), shut down.

        :returns: runs abandoned after the grace period (see :meth:`shutdown`).
        """
        self.start()
        deadline = time.monotonic() + max_runtime if max_runtime else None
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception as exc:  # never silently stop: log, note, go on
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("scheduler loop error")
                    self._wake.wait(1.0)
                if deadline is not None and time.monotonic() >= deadline:
                    self.request_stop("max runtime reached")
                    break
                idle = self.idle_seconds()
                self._wake.wait(min(1.0, max(0.05, idle if idle is not None else 1.0)))
                self._wake.clear()
        finally:
            abandoned = self.shutdown()
        return abandoned

    def shutdown(self) -> int:
        """Stop taking jobs; give running ones ``grace`` seconds; interrupt the rest.

        :returns: how many runs were still going when it gave up on them.
        """
        self._stop.set()
        log.info("stopping (%s): %d run(s) in progress, grace %ss", self._stop_reason,
                 len(self.running()), int(self.grace))
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._interrupt(item[1], "daemon stopped before the run started")
        left: list[Slot] = []
        if not self.wait_idle(self.grace):
            left = self.running()
            for slot in left:
                slot.stop.set()
                self._interrupt(slot, f"still running after the {int(self.grace)}s grace"
                                      " period when the daemon stopped")
            log.warning("interrupted %d run(s) still going after the grace period", len(left))
            # A run that honours its stop event returns quickly and records what finished.
            self.wait_idle(min(2.0, self.grace))
        for _ in self._threads:
            self._queue.put(None)
        now = self.clock()
        self.heartbeat(force=True)
        try:
            with self.history.transaction() as db:
                db.execute("UPDATE schedule_daemons SET stopped=?, stop_reason=? WHERE id=?",
                           (_ts(now), self._stop_reason, self.id))
        except Exception:
            log.exception("recording the shutdown failed")
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        log.info("stopped")
        return len(self.running()) if left else 0

    def _interrupt(self, slot: Slot, reason: str) -> None:
        now = _ts(self.clock())
        with self.history.transaction() as db:
            db.execute("UPDATE schedule_slots SET state='interrupted', reason=?, finished=?"
                       " WHERE run_id=? AND state IN (?,?)",
                       (reason, now, slot.run_id, *ACTIVE_STATES))
            db.execute("UPDATE runs SET interrupted=1, finished=? WHERE id=? AND"
                       " finished IS NULL", (now, slot.run_id))
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
