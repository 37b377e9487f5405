"""The ``upkeeper serve`` daemon: playbook schedules on a ``schedule.Scheduler`` instance,
a bounded worker pool, and at-most-once slots recorded in SQLite before each run.

The clock is injected, so tests drive :meth:`Daemon.tick` through days in milliseconds.
Signals reach the loop through :mod:`upkeeper.schedule.wakeup` (no locks in handlers);
one daemon per state dir (:mod:`~upkeeper.schedule.instance`); commands a killed
predecessor left are ended on start (:mod:`~upkeeper.schedule.reaper`).
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
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from upkeeper import gcpolicy
from upkeeper.schedule.dispatch import SlotDispatcher
from upkeeper.schedule.instance import InstanceLock, ProcessIdentity
from upkeeper.schedule.reaper import ChildRecord, reap, start_sentinel
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
    live_daemons,
    recover_slots,
    utcnow,
)
from upkeeper.schedule.wakeup import SignalInbox, Wakeup
from upkeeper.store.history import History
from upkeeper.transport import children

__all__ = ["SCHEMA", "Daemon", "JobDef", "LoadResult", "Slot", "SlotJob", "ensure_schema"]

log = logging.getLogger("upkeeper.serve")

UTC = timezone.utc


class Daemon(SlotDispatcher):
    """Runs scheduled playbooks until asked to stop.

    :param loader: returns the current jobs (called at start and on reload).
    :param run_fn: runs one slot; its exceptions are recorded, never fatal.
    :param catch_up: seconds a slot missed while the daemon was down may still run
        late (the newest one only); 0 disables.
    :param misfire_grace: lateness tolerated while running (load, clock steps).
    :param grace: seconds running jobs get to finish on stop before being interrupted.
    :param lock_path: ``serve.lock``; its directory (the state dir) is what is locked.
    :param children_file: where command process groups are recorded (see ``reaper``).
    :param retention: seconds of history kept (pruned at start and daily); None keeps all.
    """

    def __init__(self, history: History, loader: Loader, run_fn: RunFn, *,
                 clock: Callable[[], datetime] = utcnow, workers: int = 4,
                 catch_up: float = 3600.0, misfire_grace: float = 30.0,
                 grace: float = 300.0, heartbeat_interval: float = 15.0,
                 health_file: str | Path | None = None,
                 lock_path: str | Path | None = None,
                 children_file: str | Path | None = None,
                 retention: float | None = None) -> None:
        super().__init__(history, loader, run_fn, clock=clock, workers=workers,
                         catch_up=catch_up, misfire_grace=misfire_grace)
        self.grace, self.heartbeat_interval = grace, heartbeat_interval
        self.health_file = Path(health_file) if health_file else None
        self.lock_path = Path(lock_path) if lock_path else None
        self.children_file = Path(children_file) if children_file else None
        self.retention = retention
        self.identity = ProcessIdentity.current()
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._reload = threading.Event()
        self.wakeup = Wakeup()
        self.inbox = SignalInbox()
        self._stop_reason = "stopped"
        self._next_beat = 0.0
        self._next_prune = 0.0
        self._pruning: threading.Thread | None = None
        self._lock: InstanceLock | None = None

    def start(self) -> None:
        """Take the lock, end what a killed predecessor left, recover its slots, load
        jobs, start workers."""
        if self.lock_path is not None:
            self._lock = InstanceLock(self.lock_path.parent, self.lock_path)
            self._lock.acquire(self.identity)
        try:
            self._start()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    def _start(self) -> None:
        ensure_schema(self.history)
        self._refuse_live_twin()
        if self.children_file is not None:
            left = reap(self.children_file)
            log.info("commands left by a killed daemon: %s", f"{len(left)} process group(s)"
                     " killed" if left else "none")
            record = ChildRecord(self.children_file, self.identity)
            record.reset()
            children.set_recorder(record)
            sentinel = start_sentinel(self.children_file)
            if sentinel is not None:
                log.info("sentinel pid %d ends this daemon's commands if it is killed",
                         sentinel.pid)
        self.started_at = now = self.clock()
        with self.history.transaction() as db:
            db.execute("INSERT INTO schedule_daemons (id, pid, hostname, started, heartbeat,"
                       " interval, info) VALUES (?,?,?,?,?,?,?)",
                       (self.id, os.getpid(), socket.gethostname(), _ts(now), _ts(now),
                        self.heartbeat_interval,
                        json.dumps({"process": self.identity.to_dict()})))
        n = recover_slots(self.history, self.id, now)
        if n:
            log.warning("recovered %d slot(s) left running by a previous daemon: marked"
                        " interrupted, not run again", n)
        self._apply(self._load(), now)
        self._start_workers()
        log.info("serve started: %d scheduled playbook(s), %d worker(s), catch-up %ss",
                 len(self.jobs), self.workers, int(self.catch_up))
        self.heartbeat(force=True)

    def _refuse_live_twin(self) -> None:
        """A daemon recorded in the database whose process still runs (another process,
        whatever happened to the lock file) keeps this one from starting."""
        for d in live_daemons(self.history, self.id):
            who = ProcessIdentity.from_dict(d["process"])
            if who is not None and who.pid != os.getpid() and who.alive():
                raise RuntimeError(f"another upkeeper serve (pid {who.pid} on {who.host}) is"
                                   f" running on {self.history.path}")

    def reload(self) -> None:
        log.info("reloading playbooks and inventories")
        self._apply(self._load(), self.clock())
        log.info("reloaded: %d scheduled playbook(s)", len(self.jobs))
        self.heartbeat(force=True)

    def request_reload(self) -> None:
        """Reload at the next tick (any thread; signal handlers use :attr:`inbox`)."""
        self._reload.set()
        self.wakeup.wake()

    def request_stop(self, reason: str = "stopped") -> None:
        """Stop the loop (any thread; signal handlers use :attr:`inbox`)."""
        self._stop_reason = reason
        self._stop.set()
        self.wakeup.wake()

    def _take_signals(self) -> None:
        if self.inbox.stop is not None:
            self.request_stop(self.inbox.stop)
        if self.inbox.reload:
            self.inbox.reload = False
            self._reload.set()

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
        self._maybe_prune()

    def _maybe_prune(self) -> None:
        """Start a prune in the background at start and then daily."""
        mono = time.monotonic()
        if self.retention is None or mono < self._next_prune or (
                self._pruning is not None and self._pruning.is_alive()):
            return
        self._next_prune = mono + 86400
        self._pruning = threading.Thread(target=self._prune, name="upkeeper-retention",
                                         daemon=True)
        self._pruning.start()

    def _prune(self) -> None:
        from upkeeper.store.retention import prune

        assert self.retention is not None
        try:
            rep = prune(self.history, self.clock() - timedelta(seconds=self.retention))
        except Exception as exc:  # keep serving; the next day tries again
            self.last_error = f"pruning history failed: {exc}"
            log.error("%s", self.last_error)
            return
        for problem in rep.problems:
            log.warning("pruning history: %s", problem)
        if rep.results or rep.runs or rep.slots:
            log.info("history older than %d days pruned: %s", self.retention // 86400,
                     rep.summary())

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
        return {"daemon": self.id, "pid": os.getpid(), "process": self.identity.to_dict(),
                "now": now.isoformat(),
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
        gcpolicy.settle()
        deadline = time.monotonic() + max_runtime if max_runtime else None
        try:
            while True:
                self._take_signals()
                if self._stop.is_set():
                    break
                try:
                    self.tick()
                except Exception as exc:  # never silently stop: log, note, go on
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("scheduler loop error")
                    self.wakeup.wait(1.0)
                if deadline is not None and time.monotonic() >= deadline:
                    self.request_stop("max runtime reached")
                    break
                idle = self.idle_seconds()
                self.wakeup.wait(min(1.0, max(0.05, idle if idle is not None else 1.0)))
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
        if not self._wait_beating(self.grace):
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
        if self.children_file is not None:
            # Groups still recorded (abandoned runs) stay in the file for the next start.
            children.set_recorder(None)
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self.wakeup.close()
        log.info("stopped")
        return len(self.running()) if left else 0

    def _wait_beating(self, timeout: float) -> bool:
        """:meth:`wait_idle`, heart-beating meanwhile (status must not call it dead)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if self.wait_idle(max(0.0, min(left, self.heartbeat_interval))):
                return True
            if left <= 0:
                return False
            self.heartbeat()
