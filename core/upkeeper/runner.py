"""Runs a playbook: hosts in parallel, one lazily opened transport per host, every failure a Result.

Nothing a check or host does can crash a run: exceptions, timeouts and unreachable hosts
become UNKNOWN results with the reason, each result is stored as it lands, and an
interrupted run keeps what finished.
"""

from __future__ import annotations

import logging
import queue
import secrets as pysecrets
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ValidationError

from upkeeper.checks import Check, CheckContext, as_results
from upkeeper.facts import LazyFacts
from upkeeper.history import History
from upkeeper.models import CommandError, Host, Result, RunRecord, Status, utcnow
from upkeeper.playbook import CheckSpec, Playbook
from upkeeper.plugins import PluginSystem, UnknownNameError
from upkeeper.secrets import Redactor, secrets_in_model, secrets_in_vars
from upkeeper.templating import TemplateError, evaluate, render_host_vars, render_value
from upkeeper.transport import Transport, TransportError

log = logging.getLogger("upkeeper.runner")

ResultCallback = Callable[[Result], None]
FACTS_TIMEOUT = 60.0


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or utcnow()).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{pysecrets.token_hex(3)}"


def select_hosts(inventory: Any, pattern: str, limit: str | None) -> list[Host]:
    """Hosts matching the playbook's pattern, narrowed by ``--limit``, inventory order."""
    hosts: list[Host] = list(inventory.select(pattern))
    if limit:
        allowed = {h.name for h in inventory.select(limit)}
        hosts = [h for h in hosts if h.name in allowed]
    return hosts


def template_context(pb: Playbook, host: Host) -> dict[str, Any]:
    """Variables visible to params and ``when:`` on one host."""
    return {
        **pb.vars,
        **host.vars,
        "facts": host.facts,
        "ansible_facts": host.facts,
        "inventory_hostname": host.name,
        "group_names": [g for g in host.groups if g not in ("all", "ungrouped")],
    }


class _TransportSlot:
    """The host's transport, created on first use and replaced after a hung check."""

    def __init__(self, cls: type[Transport], host: Host) -> None:
        self.cls, self.host = cls, host
        self.current: Transport | None = None

    def get(self) -> Transport:
        if self.current is None:
            self.current = self.cls(self.host)
        return self.current

    def discard(self) -> None:
        t, self.current = self.current, None
        if t is not None:
            # Closing from another thread is how a hung command gets unblocked.
            threading.Thread(target=_close_quietly, args=(t,), daemon=True).start()

    def close(self) -> None:
        t, self.current = self.current, None
        if t is not None:
            _close_quietly(t)


def _close_quietly(t: Transport) -> None:
    try:
        t.close()
    except Exception as exc:  # closing must never hide the run's results
        log.warning("closing %s transport to %s failed: %s", t.name, t.host.name, exc)


Outcome = tuple[bool, Any, BaseException | None]


def _call_with_timeout(fn: Callable[[], Any], timeout: float) -> Outcome:
    """Run ``fn`` in a daemon thread; (finished, value, exception)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller, not swallowed
            box["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return False, None, None
    return True, box.get("value"), box.get("exc")


class Runner:
    """One run of one playbook. Use :func:`run_playbook`."""

    def __init__(self, pb: Playbook, plugins: PluginSystem, history: History, *,
                 check_mode: bool = False, on_result: ResultCallback | None = None,
                 stop_event: threading.Event | None = None, force: bool = False) -> None:
        self.pb, self.plugins, self.history = pb, plugins, history
        self.check_mode = check_mode
        self.force = force
        self.on_result = on_result
        self.stop = stop_event or threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._slots: set[_TransportSlot] = set()
        self._checks_done: dict[str, int] = {}
        self.run: RunRecord | None = None

    def emit(self, result: Result, redactor: Redactor) -> None:
        result.summary = redactor.text(result.summary)
        result.details = redactor.obj(result.details)
        with self._lock:
            if self._closed or self.run is None:
                return
            try:
                self.history.add_result(self.run.run_id, result)
            except Exception as exc:  # a full disk must not lose the in-memory results
                log.error("could not store result for %s/%s: %s", result.host, result.check, exc)
            self.run.results.append(result)
        self.plugins.call("upkeeper_result", result=result)
        if self.on_result is not None:
            self.on_result(result)

    def host_failed(self, host: Host, specs: Sequence[CheckSpec], status: Status, reason: str,
                    redactor: Redactor) -> None:
        for spec in specs:
            self.emit(Result(status, reason, host=host.name, check=spec.check,
                             name=spec.label), redactor)

    def run_host(self, raw: Host) -> None:
        pb = self.pb
        redactor = Redactor(secrets_in_vars(raw.vars))
        try:
            hostvars = render_host_vars(raw.vars, pb.vars)
        except TemplateError as exc:
            self.host_failed(raw, pb.checks, Status.UNKNOWN, f"inventory: {exc}", redactor)
            return
        redactor.add(secrets_in_vars(hostvars))
        host = Host(name=raw.name, vars=hostvars, groups=list(raw.groups))
        if self.run is not None:
            self.run.hosts[host.name] = host
        try:
            tcls = self.plugins.registry.transport(host.connection)
        except UnknownNameError as exc:
            self.host_failed(host, pb.checks, Status.UNKNOWN, str(exc), redactor)
            return
        slot = _TransportSlot(tcls, host)
        host.facts = LazyFacts(lambda: slot.get().gather_facts(timeout=FACTS_TIMEOUT))
        deadline = time.monotonic() + pb.host_timeout
        with self._lock:
            self._slots.add(slot)
        try:
            for index, spec in enumerate(pb.checks):
                if self.stop.is_set():
                    self.host_failed(host, pb.checks[index:], Status.UNKNOWN,
                                     "run interrupted before this check started", redactor)
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.host_failed(host, pb.checks[index:], Status.UNKNOWN,
                                     f"host timeout ({pb.host_timeout:g}s) reached", redactor)
                    return
                started = utcnow()
                t0 = time.monotonic()
                results, fatal = self.run_check(index, spec, host, slot, remaining, redactor)
                for r in results:
                    r.host, r.check = host.name, r.check or spec.check
                    r.name = r.name or spec.label
                    r.started = started
                    r.duration = r.duration or (time.monotonic() - t0)
                    self.emit(r, redactor)
                self._checks_done[host.name] = index + 1
                if fatal is not None:
                    self.host_failed(host, pb.checks[index + 1:], fatal.status,
                                     f"not run: {fatal}", redactor)
                    return
        finally:
            with self._lock:
                self._slots.discard(slot)
            slot.close()

    def run_check(self, index: int, spec: CheckSpec, host: Host, slot: _TransportSlot,
                  remaining: float,
                  redactor: Redactor) -> tuple[list[Result], TransportError | None]:
        """Results of one check, and the transport error that ends the host, if any."""
        try:
            cls = self.plugins.registry.check(spec.check)
        except UnknownNameError as exc:
            reason = self.plugins.registry.missing_check_reason(spec.check)
            return [Result(Status.UNKNOWN, reason or str(exc))], None
        timeout = min(spec.timeout or self.pb.timeout or cls.timeout, remaining)
        prep = self.prepare(index, spec, cls, host, redactor)
        if isinstance(prep, Result):
            return [prep], None
        params, note = prep
        fn = self._bind(cls, host, slot, params, timeout)
        finished, value, error = _call_with_timeout(fn, timeout)
        if not finished:
            slot.discard()
            return [Result(Status.UNKNOWN, f"timed out after {timeout:g}s")], None
        if error is None:
            try:
                results = as_results(value)
            except TypeError as exc:
                return [Result(Status.UNKNOWN, str(exc))], None
            for r in results:
                r.summary += note
            return results, None
        if isinstance(error, TransportError):
            return [Result(error.status, f"{error}")], error
        if isinstance(error, CommandError):
            return [Result(Status.UNKNOWN, str(error))], None
        if not isinstance(error, Exception):
            raise error
        log.debug("check %s on %s raised", spec.check, host.name, exc_info=error)
        return [Result(Status.UNKNOWN, f"check failed: {type(error).__name__}: {error}")], None

    def prepare(self, index: int, spec: CheckSpec, cls: type[Check[Any]], host: Host,
                redactor: Redactor) -> tuple[BaseModel, str] | Result:
        """(params validated for this host, note for the summary), or the result that
        replaces running the check."""
        pb = self.pb
        if not cls.supports(host):
            return Result(Status.SKIPPED, f"not supported on {host.os_family} "
                                          f"(runs on {', '.join(cls.platforms)})")
        try:
            context = template_context(pb, host)
            if spec.when is not None and not evaluate(spec.when, context):
                return Result(Status.SKIPPED, f"when: {spec.when} is false")
            rendered = render_value(spec.params, context)
        except TemplateError as exc:
            line = pb.line_of(("checks", index))
            return Result(Status.UNKNOWN, f"{pb.path}:{line}: {exc} for host {host.name}")
        except TransportError as exc:
            return Result(exc.status, str(exc))
        try:
            params = cls.Params.model_validate(rendered)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "params"
            line = pb.line_of(("checks", index, "params"))
            return Result(Status.UNKNOWN, f"{pb.path}:{line}: {spec.check}: param '{where}': "
                                          f"{err['msg']} (host {host.name})")
        redactor.add(secrets_in_model(params))
        note = ""
        if cls.is_action and getattr(cls, "needs_window", True):
            blocked = self._outside_window(host)
            if blocked and not self.force:
                return Result(Status.SKIPPED, blocked)
            if blocked:
                log.warning("%s on %s: --force: running %s", spec.check, host.name, blocked)
                note = " [forced: outside maintenance window]"
        return params, note

    def _outside_window(self, host: Host) -> str | None:
        if not host.vars.get("maintenance_windows"):
            return None
        try:
            from upkeeper.maintenance import window_state
        except ImportError:
            return "maintenance windows are defined but not supported by this version"
        try:
            state = window_state(host.vars, datetime.now(timezone.utc))
        except ValueError as exc:
            return f"invalid maintenance window for {host.name}: {exc}"
        if state.inside:
            return None
        nxt = ""
        if state.next_start:
            nxt = f"; next window starts {state.next_start:%Y-%m-%d %H:%M %Z}"
        return f"outside maintenance window ({state.reason}){nxt}"

    def _bind(self, cls: type[Check[Any]], host: Host, slot: _TransportSlot,
              params: BaseModel, timeout: float) -> Callable[[], Any]:
        def call() -> Any:
            assert self.run is not None
            ctx: CheckContext[Any] = CheckContext(
                host=host, transport=slot.get(), params=params,
                history=self.history.for_host(host.name, cls.name),
                check_mode=self.check_mode, run_id=self.run.run_id, timeout=timeout,
                log=logging.getLogger(f"upkeeper.check.{cls.name}"),
            )
            return cls().run(ctx)
        return call

    def execute(self, hosts: Sequence[Host], forks: int, run: RunRecord) -> RunRecord:
        self.run = run
        run.hosts = {h.name: h for h in hosts}
        run.meta["clients"] = {h.name: str(h.vars["client"]) for h in hosts
                               if h.vars.get("client") is not None}
        self.history.start_run(run)
        done: dict[str, bool] = {}
        batches = self.pb.batches(list(hosts))
        try:
            for number, batch in enumerate(batches, 1):
                self._run_batch(batch, forks, done)
                if self.stop.is_set():
                    break
                stop_reason = self._batch_failed(batch, number)
                if stop_reason:
                    rest = [h for b in batches[number:] for h in b]
                    for h in rest:
                        self.host_failed(h, self.pb.checks, Status.SKIPPED, stop_reason,
                                         Redactor())
                        done[h.name] = True
                    run.meta["aborted"] = stop_reason
                    break
        except KeyboardInterrupt:
            self.stop.set()
            run.interrupted = True
            log.warning("interrupted: recording what finished")
            self._abort_in_flight()
        if self.stop.is_set():
            run.interrupted = True
        self._finish(hosts, done, run)
        return run

    def _run_batch(self, batch: Sequence[Host], forks: int, done: dict[str, bool]) -> None:
        work: queue.Queue[Host] = queue.Queue()
        for h in batch:
            work.put(h)
        threads = [threading.Thread(target=self._worker, args=(work, done), daemon=True,
                                    name=f"upkeeper-host-{i}")
                   for i in range(max(1, min(forks, len(batch))))]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
                if self.stop.is_set():
                    self._abort_in_flight()

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

    def _worker(self, work: queue.Queue[Host], done: dict[str, bool]) -> None:
        while not self.stop.is_set():
            try:
                host = work.get_nowait()
            except queue.Empty:
                return
            try:
                self.run_host(host)
            except Exception as exc:  # last line of defence: never lose the other hosts
                log.exception("host %s failed unexpectedly", host.name)
                self.host_failed(host, self.pb.checks, Status.UNKNOWN,
                                 f"internal error: {exc}", Redactor())
            done[host.name] = True

    def _finish(self, hosts: Sequence[Host], done: dict[str, bool], run: RunRecord) -> None:
        for h in hosts:
            if not done.get(h.name):
                missing = self.pb.checks[self._checks_done.get(h.name, 0):]
                self.host_failed(h, missing, Status.UNKNOWN, "run interrupted", Redactor())
        order = {h.name: i for i, h in enumerate(hosts)}
        labels = {s.label: i for i, s in enumerate(self.pb.checks)}
        with self._lock:
            run.results.sort(key=lambda r: (order.get(r.host, 1 << 30),
                                            labels.get(r.name, 1 << 30)))
            self._closed = True
        run.finished = utcnow()
        self.history.finish_run(run)
        self.plugins.call("upkeeper_run_finished", run=run)


def run_playbook(playbook: Playbook, inventory: Any, plugins: PluginSystem, history: History,
                 *, limit: str | None = None, check_mode: bool = False,
                 forks: int | None = None, on_result: ResultCallback | None = None,
                 stop_event: threading.Event | None = None, run_id: str | None = None,
                 meta: dict[str, Any] | None = None, force: bool = False) -> RunRecord:
    """Run ``playbook`` on the inventory's matching hosts and return the run record.

    Setting ``stop_event`` stops the run: no new checks start and commands still running
    are killed; what finished is kept. Results are stored in ``history`` as they land and
    passed to ``on_result``; the
    ``upkeeper_result`` and ``upkeeper_run_finished`` hooks are called. With ``force``,
    actions run outside maintenance windows (logged, and noted in their summaries).
    """
    hosts = select_hosts(inventory, playbook.hosts, limit)
    run = RunRecord(run_id=run_id or new_run_id(), playbook=playbook.name,
                    check_mode=check_mode)
    run.meta = {"playbook_path": playbook.path, "hosts": playbook.hosts, "limit": limit,
                "host_count": len(hosts), **(meta or {})}
    run.context = {"history": history, "playbook": playbook, "inventory": inventory,
                   "plugins": plugins}
    runner = Runner(playbook, plugins, history, check_mode=check_mode,
                    on_result=on_result, stop_event=stop_event, force=force)
    return runner.execute(hosts, forks or playbook.forks, run)


class _FactsPlaceholder(dict[str, Any]):
    """Stands in for facts before they are gathered: any fact renders as ''."""

    def __missing__(self, key: str) -> str:
        return ""

    def __getattr__(self, key: str) -> str:
        return ""


def preflight(playbook: Playbook, hosts: Sequence[Host]) -> list[str]:
    """Undefined variables in params or ``when:``, per host, found before anything runs.

    Host vars are rendered (``{{ env.X }}`` missing is reported too); facts are not
    gathered here, so expressions on facts are not checked.
    """
    problems: list[str] = []
    for host in hosts:
        try:
            hostvars = render_host_vars(host.vars, playbook.vars)
        except TemplateError as exc:
            problems.append(f"host {host.name}: inventory: {exc}")
            continue
        probe = Host(name=host.name, vars=hostvars, groups=list(host.groups),
                     facts=_FactsPlaceholder())
        context = template_context(playbook, probe)
        for i, spec in enumerate(playbook.checks):
            items: list[tuple[tuple[str | int, ...], Any]] = [
                (("checks", i, "params", k), v) for k, v in spec.params.items()]
            if spec.when is not None:
                items.insert(0, (("checks", i, "when"), None))
            for key_path, value in items:
                try:
                    if value is None and key_path[-1] == "when":
                        # Skipped on this host, so its params are never rendered; facts
                        # are placeholders here, so a `when:` naming them decides nothing.
                        when = spec.when or ""
                        if not evaluate(when, context) and "facts" not in when:
                            break
                    else:
                        render_value(value, context)
                except TemplateError as exc:
                    if exc.variable is None:
                        continue  # depends on facts or values only known at run time
                    line = playbook.line_of(key_path)
                    hint = " (define it in host/group vars, or use '| default(...)')"
                    problems.append(f"{playbook.path}:{line}: {spec.check}: {exc} for host "
                                    f"{host.name}{hint}")
    return problems
