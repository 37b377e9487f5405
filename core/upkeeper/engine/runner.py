"""Runs a playbook: hosts in parallel batches, every failure a Result, one result per
(host, check) whatever happens.

Nothing a check, hook or host does can crash or freeze a run: exceptions, timeouts and
unreachable hosts become UNKNOWN results with the reason, each result is stored as it
lands, and an interrupted run keeps what finished. A ledger of (host, check index) lets
each check deliver once: late results of an interrupted run, a host that fails halfway
and the interrupted fill-in at the end never duplicate one another.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets as pysecrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import Any, Protocol

from upkeeper import gcpolicy
from upkeeper.engine.guard import HUNG
from upkeeper.engine.hostrun import HostFinished, RunState, TransportSlot, run_host
from upkeeper.engine.playbook import Playbook
from upkeeper.engine.preflight import preflight, select_hosts, template_context
from upkeeper.engine.secrets import Redactor, secrets_for_run
from upkeeper.models import Host, Result, RunRecord, Status, utcnow
from upkeeper.plugins import PluginSystem
from upkeeper.store.history import History

__all__ = ["RemoteHosts", "Runner", "new_run_id", "preflight", "run_playbook", "select_hosts",
           "template_context"]

log = logging.getLogger("upkeeper.engine.runner")

ResultCallback = Callable[[Result], None]
INTERRUPTED = "run interrupted"
#: Seconds workers get to return after a stop before their checks are filled in.
STOP_GRACE = 10.0
#: Default time limits of the hooks called during a run (environment overrides them).
RESULT_HOOK_TIMEOUT = 10.0
RUN_FINISHED_HOOK_TIMEOUT = 60.0


class RemoteHosts(Protocol):
    """Hosts a run hands to someone else (site workers, :mod:`upkeeper.sites`): the
    runner stays unaware of how. ``run`` blocks until every check of ``hosts`` is
    delivered through ``state.deliver`` or the run stops; checks left undelivered are
    filled in as for local hosts."""

    def claims(self, host: Host) -> bool: ...

    def run(self, state: RunState, hosts: Sequence[Host]) -> None: ...


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or utcnow()).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{pysecrets.token_hex(3)}"


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw.strip() else default
    except ValueError:
        log.warning("%s=%r is not a number of seconds: using %g", name, raw, default)
        return default
    return value if value > 0 else default


class Runner:
    """One run of one playbook. Use :func:`run_playbook`."""

    def __init__(self, pb: Playbook, plugins: PluginSystem, history: History, *,
                 check_mode: bool = False, on_result: ResultCallback | None = None,
                 stop_event: threading.Event | None = None, force: bool = False,
                 allow_anytime: bool = False, result_hook_timeout: float | None = None,
                 run_finished_hook_timeout: float | None = None,
                 remote: RemoteHosts | None = None,
                 host_finished: HostFinished | None = None) -> None:
        self.pb, self.plugins, self.history = pb, plugins, history
        self.remote = remote
        #: The seam called per host after its checks (the fix pass), from above.
        self.host_finished = host_finished
        self.check_mode = check_mode
        self.force = force
        self.allow_anytime = allow_anytime
        self.on_result = on_result
        self.stop = stop_event or threading.Event()
        self.result_hook_timeout = result_hook_timeout or _env_seconds(
            "UPKEEPER_RESULT_HOOK_TIMEOUT", RESULT_HOOK_TIMEOUT)
        self.run_finished_hook_timeout = run_finished_hook_timeout or _env_seconds(
            "UPKEEPER_RUN_FINISHED_HOOK_TIMEOUT", RUN_FINISHED_HOOK_TIMEOUT)
        self._lock = threading.Lock()
        self._closed = False
        self._claimed: set[tuple[str, int]] = set()
        self._slots: set[TransportSlot] = set()
        self._hung_hooks: set[str] = set()
        self.hook_problems: list[str] = []
        self.run: RunRecord | None = None
        self.run_id = ""
        #: Every secret of the run: masked in whatever any check on any host returns.
        self.redactor = Redactor()

    def deliver(self, host: str, index: int, results: Sequence[Result],
                redactor: Redactor) -> None:
        """Store and announce the results of check ``index`` on ``host``, once: a second
        delivery for the same check, or any after the run closed, is dropped. Results
        landing after a stop are UNKNOWN "run interrupted" (a killed command says
        nothing about the host)."""
        stopped = self.stop.is_set()
        with self._lock:
            run = self.run
            if self._closed or run is None or (host, index) in self._claimed:
                return
            self._claimed.add((host, index))
            for r in results:
                if stopped and not r.summary.startswith(INTERRUPTED):
                    r.details = {"reported_status": r.status.value,
                                 "reported_summary": redactor.text(r.summary)}
                    r.status, r.summary = Status.UNKNOWN, f"{INTERRUPTED} while this check ran"
                    r.metrics = {}
                r.summary = redactor.text(r.summary)
                r.details = redactor.obj(r.details)
                try:
                    self.history.add_result(run.run_id, r)
                except Exception as exc:  # a full disk must not lose the in-memory results
                    log.error("could not store result for %s/%s: %s", r.host, r.check, exc)
                run.results.append(r)
        for r in results:
            self.plugins.call_bounded("upkeeper_result", self.result_hook_timeout,
                                      self.hook_problems, self._hung_hooks, result=r)
            if self.on_result is not None:
                try:
                    self.on_result(r)
                except Exception:
                    log.exception("showing a result failed")

    def fail_rest(self, host: Host, start: int, status: Status, reason: str,
                  redactor: Redactor) -> None:
        """One ``status`` result with ``reason`` for each check from ``start`` on that has
        not delivered yet."""
        with self._lock:  # after a run every check has delivered: build no results
            todo = [i for i in range(start, len(self.pb.checks))
                    if (host.name, i) not in self._claimed]
        for index in todo:
            spec = self.pb.checks[index]
            self.deliver(host.name, index, [Result(status, reason, host=host.name,
                                                   check=spec.check, name=spec.label)],
                         redactor)

    def track(self, slot: TransportSlot, add: bool) -> None:
        with self._lock:
            if add:
                self._slots.add(slot)
            else:
                self._slots.discard(slot)

    def execute(self, hosts: Sequence[Host], forks: int, run: RunRecord) -> RunRecord:
        self.run, self.run_id = run, run.run_id
        gcpolicy.settle()  # start-up is over: hosts from here on
        run.hosts = {h.name: h for h in hosts}
        run.meta["clients"] = {h.name: str(h.vars["client"]) for h in hosts
                               if h.vars.get("client") is not None}
        self.history.start_run(run)
        self.plugins.call_bounded("upkeeper_run_started", self.run_finished_hook_timeout,
                                  self.hook_problems, set(), run=run)
        try:
            with _sigint_stops(self.stop):
                self._run_all(hosts, forks, run)
        except KeyboardInterrupt:
            self.stop.set()
            log.warning("interrupted: recording what finished")
        finally:
            self._finish(hosts, run)
        return run

    def _run_all(self, hosts: Sequence[Host], forks: int, run: RunRecord) -> None:
        remote = self.remote
        far = [h for h in hosts if remote is not None and remote.claims(h)]
        if remote is None or not far:
            self._run_batches(hosts, forks, run)
            return
        names = {h.name for h in far}
        thread = threading.Thread(target=self._run_remote, args=(remote, far), daemon=True,
                                  name="upkeeper-remote")
        thread.start()
        self._run_batches([h for h in hosts if h.name not in names], forks, run)
        while thread.is_alive():
            thread.join(0.1)

    def _run_remote(self, remote: RemoteHosts, hosts: Sequence[Host]) -> None:
        try:
            remote.run(self, hosts)
        except BaseException as exc:  # never lose the local hosts' results
            log.error("remote hosts failed unexpectedly", exc_info=exc)
            for h in hosts:
                self.fail_rest(h, 0, Status.UNKNOWN,
                               f"internal error: {type(exc).__name__}: {exc}", Redactor())

    def _run_batches(self, hosts: Sequence[Host], forks: int, run: RunRecord) -> None:
        batches = self.pb.batches(list(hosts))
        for number, batch in enumerate(batches, 1):
            self._run_batch(batch, forks)
            if self.stop.is_set():
                return
            stop_reason = self._batch_failed(batch, number)
            if stop_reason:
                for h in (h for b in batches[number:] for h in b):
                    self.fail_rest(h, 0, Status.SKIPPED, stop_reason, Redactor())
                run.meta["aborted"] = stop_reason
                return

    def _run_batch(self, batch: Sequence[Host], forks: int) -> None:
        work: queue.Queue[Host] = queue.Queue()
        for h in batch:
            work.put(h)
        threads = [threading.Thread(target=self._worker, args=(work,), daemon=True,
                                    name=f"upkeeper-host-{i}")
                   for i in range(max(1, min(forks, len(batch))))]
        for t in threads:
            t.start()
        stopped_at: float | None = None
        for t in threads:
            while t.is_alive():
                t.join(0.1)
                if self.stop.is_set():
                    if stopped_at is None:
                        stopped_at = time.monotonic()
                        self._abort_in_flight()
                    elif time.monotonic() - stopped_at > STOP_GRACE:
                        log.warning("hosts still busy %gs after the stop: left behind",
                                    STOP_GRACE)
                        return

    def _abort_in_flight(self) -> None:
        """Close every open transport so commands still running are killed."""
        with self._lock:
            slots = list(self._slots)
            self._slots.clear()
        for slot in slots:
            slot.discard()

    def _batch_failed(self, batch: Sequence[Host], number: int) -> str | None:
        """Why the run stops after this batch (``max_fail_percentage``), if it does."""
        limit = self.pb.max_fail_percentage
        if limit is None or self.run is None or not batch:
            return None
        names = {h.name for h in batch}
        with self._lock:
            failed = {r.host for r in self.run.results
                      if r.host in names and r.status in (Status.CRIT, Status.UNKNOWN)}
        pct = 100 * len(failed) / len(batch)
        if pct <= limit:
            return None
        return (f"not run: {len(failed)} of {len(batch)} hosts failed in batch {number} "
                f"({pct:.0f}% > max_fail_percentage {limit:g}%)")

    def _worker(self, work: queue.Queue[Host]) -> None:
        while not self.stop.is_set():
            try:
                host = work.get_nowait()
            except queue.Empty:
                return
            try:
                run_host(self, host)
            except BaseException as exc:  # last line of defence: never lose the other hosts
                log.error("host %s failed unexpectedly", host.name, exc_info=exc)
                self.fail_rest(host, 0, Status.UNKNOWN,
                               f"internal error: {type(exc).__name__}: {exc}", Redactor())

    def _finish(self, hosts: Sequence[Host], run: RunRecord) -> None:
        if self.stop.is_set():
            run.interrupted = True
            self._abort_in_flight()
        for h in hosts:  # the checks no worker got to
            self.fail_rest(h, 0, Status.UNKNOWN, INTERRUPTED, Redactor())
        order = {h.name: i for i, h in enumerate(hosts)}
        with self._lock:
            self._closed = True
            run.results.sort(key=lambda r: order.get(r.host, 1 << 30))  # stable: check order
        hung = HUNG.counts()
        if hung:
            run.meta["hung_checks"] = hung
        run.finished = utcnow()
        if run.unreachable:  # stored, so the current state can show a down host as one line
            run.meta["unreachable"] = {h: u.reason for h, u in run.unreachable.items()}
        self._record_problems(run)
        self.history.finish_run(run)
        before = len(self.hook_problems)
        self.plugins.call_bounded("upkeeper_run_finished", self.run_finished_hook_timeout,
                                  self.hook_problems, set(), run=run)
        if len(self.hook_problems) > before:
            self._record_problems(run)
            try:
                self.history.finish_run(run)
            except Exception as exc:
                log.error("could not record hook problems of run %s: %s", run.run_id, exc)

    def _record_problems(self, run: RunRecord) -> None:
        if self.hook_problems:
            run.meta["hook_problems"] = list(self.hook_problems[:50])


@contextmanager
def _sigint_stops(stop: threading.Event) -> Iterator[None]:
    """In the main thread, the first Ctrl-C sets ``stop`` (the run winds down and records
    what finished, once each); a second one raises KeyboardInterrupt as usual."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("interrupted: stopping the run (Ctrl-C again to quit at once)")
        stop.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_playbook(playbook: Playbook, inventory: Any, plugins: PluginSystem, history: History,
                 *, limit: str | None = None, check_mode: bool = False,
                 forks: int | None = None, on_result: ResultCallback | None = None,
                 stop_event: threading.Event | None = None, run_id: str | None = None,
                 meta: dict[str, Any] | None = None, force: bool = False,
                 allow_anytime: bool = False,
                 remote: RemoteHosts | None = None,
                 host_finished: HostFinished | None = None) -> RunRecord:
    """Run ``playbook`` on the inventory's matching hosts and return the run record.

    Setting ``stop_event`` (or Ctrl-C in the main thread) stops the run: no new checks
    start, commands still running are killed, results landing afterwards are UNKNOWN
    "run interrupted", ``run.interrupted`` is set, and each (host, check) has exactly
    one result. Results are stored in ``history`` as they land and passed to
    ``on_result``; the ``upkeeper_result`` and ``upkeeper_run_finished`` hooks are
    called with time limits. With ``force``, actions run outside maintenance windows
    (logged, and noted in their summaries); with ``allow_anytime`` (``--now``) they run
    on hosts that have no ``maintenance_windows``. Hosts ``remote`` claims are run
    through it (site workers), the others here. ``host_finished`` is called on each
    host whose checks all ran here (not an unreachable or interrupted one), before its
    transport closes: the fix pass of ``upkeeper.remediation`` is passed in here.
    """
    hosts = select_hosts(inventory, playbook.hosts, limit)
    run = RunRecord(run_id=run_id or new_run_id(), playbook=playbook.name,
                    check_mode=check_mode)
    run.meta = {"playbook_path": playbook.path, "hosts": playbook.hosts, "limit": limit,
                "host_count": len(hosts), **(meta or {})}
    runner = Runner(playbook, plugins, history, check_mode=check_mode,
                    on_result=on_result, stop_event=stop_event, force=force,
                    allow_anytime=allow_anytime, remote=remote,
                    host_finished=host_finished)
    # Any host's secret can show up in any other host's output (a shared file, a log).
    everyone = getattr(inventory, "hosts", None)
    pool = everyone.values() if isinstance(everyone, Mapping) else hosts
    runner.redactor.add(secrets_for_run(playbook, [*pool, *hosts]))
    return runner.execute(hosts, forks or playbook.forks, run)
