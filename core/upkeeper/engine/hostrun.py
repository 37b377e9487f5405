"""One host of a run: its lazily opened transport, and each check prepared, guarded and
turned into results (every failure, even ``SystemExit`` from plugin code, a result)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from upkeeper.bounded import run_bounded
from upkeeper.checks import Check, CheckContext, as_results
from upkeeper.engine.facts import LazyFacts
from upkeeper.engine.guard import HUNG
from upkeeper.engine.playbook import CheckSpec, Playbook
from upkeeper.engine.preflight import template_context, unwindowed_reason
from upkeeper.engine.secrets import Redactor, secrets_in_model, secrets_in_values
from upkeeper.engine.templating import TemplateError, evaluate, render_value
from upkeeper.engine.variables import bind_host
from upkeeper.models import CommandError, Host, Result, RunRecord, Status, Unreachable, utcnow
from upkeeper.plugins import PluginSystem, UnknownNameError
from upkeeper.store.history import History
from upkeeper.transport.base import Transport, TransportError

log = logging.getLogger("upkeeper.engine.runner")

FACTS_TIMEOUT = 60.0
INTERRUPTED_BEFORE = "run interrupted before this check started"
#: How a stored re-run result (a fix's verification) reads beside the run's own result.
RERUN_PREFIX = "re-checked after a fix: "


class RunState(Protocol):
    """What a host needs from its run (the :class:`~upkeeper.engine.runner.Runner`)."""

    pb: Playbook
    plugins: PluginSystem
    history: History
    check_mode: bool
    force: bool
    allow_anytime: bool
    stop: threading.Event
    run_id: str
    run: RunRecord | None
    #: Every secret of the run: masked in whatever any check on any host returns.
    redactor: Redactor

    def deliver(self, host: str, index: int, results: Sequence[Result],
                redactor: Redactor) -> None: ...

    def fail_rest(self, host: Host, start: int, status: Status, reason: str,
                  redactor: Redactor) -> None: ...

    def track(self, slot: TransportSlot, add: bool) -> None: ...


@dataclass
class FinishedHost:
    """A host whose checks all ran, handed to the run's ``host_finished`` seam (the fix
    pass) before its transport closes: what each check returned, the host's own
    transport, ``rerun(index)`` to run one of its checks again the same way, and
    ``params(index)``: that check's params as rendered and validated for this host
    (None when it did not run)."""

    host: Host
    checks: list[tuple[int, CheckSpec, list[Result]]]
    transport: Callable[[], Transport]
    rerun: Callable[[int], list[Result]]
    check_mode: bool
    run_id: str
    redactor: Redactor
    stop: threading.Event
    run: RunRecord | None = field(default=None, repr=False)
    params: Callable[[int], BaseModel | None] = field(default=lambda index: None,
                                                      repr=False)


#: Called per host after its last check (remediation's fix pass, passed in from above).
HostFinished = Callable[[FinishedHost], None]


class TransportSlot:
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


def run_host(state: RunState, raw: Host) -> None:
    """Run every check of the playbook on one host, delivering results as they land."""
    pb = state.pb
    redactor = state.redactor
    # Vars render when something uses them; a secret among them is masked from then on.
    host = bind_host(raw, pb.vars, lambda name, value: redactor.add(
        secrets_in_values({name: value})))
    try:
        tcls = state.plugins.registry.transport(host.connection)
    except (UnknownNameError, TemplateError) as exc:
        state.fail_rest(host, 0, Status.UNKNOWN, str(exc), redactor)
        return
    host.transport_os_family = tcls.os_families[0] if tcls.os_families else None
    slot = TransportSlot(tcls, host)
    host.facts = LazyFacts(lambda: slot.get().gather_facts(timeout=FACTS_TIMEOUT))
    deadline = time.monotonic() + pb.host_timeout
    state.track(slot, True)
    delivered: list[tuple[int, CheckSpec, list[Result]]] = []
    try:
        for index, spec in enumerate(pb.checks):
            if state.stop.is_set():
                state.fail_rest(host, index, Status.UNKNOWN, INTERRUPTED_BEFORE, redactor)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state.fail_rest(host, index, Status.UNKNOWN,
                                f"host timeout ({pb.host_timeout:g}s) reached", redactor)
                return
            started = utcnow()
            t0 = time.monotonic()
            results, fatal = run_check(state, index, spec, host, slot, remaining, redactor)
            for r in results:
                r.host, r.check = host.name, r.check or spec.check
                r.name = r.name or spec.label
                r.started = started
                r.duration = r.duration or (time.monotonic() - t0)
            state.deliver(host.name, index, results, redactor)
            delivered.append((index, spec, results))
            if fatal is not None:
                state.fail_rest(host, index + 1, fatal.status, f"not run: {fatal}", redactor)
                if state.run is not None:  # alerts tell it once, not once per check
                    lost = [r.name for r in results] + [s.label for s in pb.checks[index + 1:]]
                    # Readers say "unreachable: <reason>"; SSH's errors say it already.
                    reason = str(fatal).removeprefix("unreachable: ")
                    state.run.unreachable[host.name] = Unreachable(
                        redactor.text(reason), fatal.status, frozenset(lost))
                return
        seam: HostFinished | None = getattr(state, "host_finished", None)
        if seam is not None and not state.stop.is_set():
            _call_seam(seam, state, host, slot, delivered, redactor)
    finally:
        state.track(slot, False)
        slot.close()


def _call_seam(seam: HostFinished, state: RunState, host: Host, slot: TransportSlot,
               delivered: list[tuple[int, CheckSpec, list[Result]]],
               redactor: Redactor) -> None:
    def rerun(index: int) -> list[Result]:
        """Run check ``index`` again and store what it says: a later result of the run
        (not in ``run.results``, which hold one result per check), so the current state
        and the monthly report see the host as the re-run found it."""
        spec = state.pb.checks[index]
        started, t0 = utcnow(), time.monotonic()
        results, _fatal = run_check(state, index, spec, host, slot, state.pb.host_timeout,
                                    redactor)
        for r in results:
            r.host, r.check = host.name, r.check or spec.check
            r.name = r.name or spec.label
            r.started = started
            r.duration = r.duration or (time.monotonic() - t0)
            r.summary = redactor.text(r.summary)
            r.details = redactor.obj(r.details)
            if not state.check_mode:
                try:
                    state.history.add_result(state.run_id, replace(
                        r, summary=f"{RERUN_PREFIX}{r.summary}"))
                except Exception as exc:  # the caller still judges the re-run
                    log.error("could not store re-run result for %s/%s: %s", r.host,
                              r.check, exc)
        return results

    def params(index: int) -> BaseModel | None:
        spec = state.pb.checks[index]
        try:
            prep = prepare(state, index, spec, state.plugins.registry.check(spec.check),
                           host, redactor)
        except (UnknownNameError, TransportError):
            return None
        return None if isinstance(prep, Result) else prep[0]

    try:
        seam(FinishedHost(host, delivered, slot.get, rerun, state.check_mode, state.run_id,
                          redactor, state.stop, state.run, params))
    except Exception:  # the seam's own failures are its to record; never lose the run
        log.exception("after-host step failed on %s", host.name)


def run_check(state: RunState, index: int, spec: CheckSpec, host: Host, slot: TransportSlot,
              remaining: float,
              redactor: Redactor) -> tuple[list[Result], TransportError | None]:
    """Results of one check, and the transport error that ends the host, if any."""
    try:
        cls = state.plugins.registry.check(spec.check)
    except UnknownNameError as exc:
        reason = state.plugins.registry.missing_check_reason(spec.check)
        return [Result(Status.UNKNOWN, reason or str(exc))], None
    timeout = min(spec.timeout or state.pb.timeout or cls.timeout, remaining)
    try:
        prep = prepare(state, index, spec, cls, host, redactor)
    except TransportError as exc:  # facts for `when:` could not be gathered: host is lost
        return [Result(exc.status, str(exc))], exc
    if isinstance(prep, Result):
        return [prep], None
    params, note = prep
    refused = HUNG.refuse(cls.name)
    if refused:
        return [Result(Status.UNKNOWN, refused)], None
    fn = _bind(state, cls, host, slot, params, timeout)
    done = run_bounded(fn, timeout, name=f"upkeeper-check-{cls.name}", stop=state.stop)
    if not done.finished:
        slot.discard()
        if done.stopped:
            return [Result(Status.UNKNOWN, "run interrupted while this check ran")], None
        HUNG.abandon(cls.name, done.thread)
        return [Result(Status.UNKNOWN, f"timed out after {timeout:g}s")], None
    error = done.error
    if error is None:
        try:
            results = as_results(done.value)
        except TypeError as exc:
            return [Result(Status.UNKNOWN, str(exc))], None
        for r in results:
            r.summary += note
        return results, None
    if isinstance(error, TransportError):
        return [Result(error.status, f"{error}")], error
    if isinstance(error, (CommandError, TemplateError)):
        return [Result(Status.UNKNOWN, str(error))], None
    log.debug("check %s on %s raised", spec.check, host.name, exc_info=error)
    if not isinstance(error, Exception):  # SystemExit (argparse), KeyboardInterrupt ...
        return [Result(Status.UNKNOWN, f"check raised {type(error).__name__}"
                                       f"({error!s}): plugin code must not exit")], None
    return [Result(Status.UNKNOWN, f"check failed: {type(error).__name__}: {error}")], None


def prepare(state: RunState, index: int, spec: CheckSpec, cls: type[Check[Any]], host: Host,
            redactor: Redactor) -> tuple[BaseModel, str] | Result:
    """(params validated for this host, note for the summary), or the result that
    replaces running the check."""
    pb = state.pb
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
    if cls.is_action and getattr(cls, "needs_window", True) and not state.check_mode:
        if not host.vars.get("maintenance_windows"):
            if not (state.allow_anytime or pb.allow_anytime):
                return Result(Status.SKIPPED, unwindowed_reason(spec.check, host.name))
            return params, note
        blocked = outside_window(host)
        if blocked and not state.force:
            return Result(Status.SKIPPED, blocked)
        if blocked:
            log.warning("%s on %s: --force: running %s", spec.check, host.name, blocked)
            note = " [forced: outside maintenance window]"
    return params, note


def outside_window(host: Host) -> str | None:
    """Why ``host`` is outside its maintenance windows now (None when inside)."""
    from upkeeper.engine.windows import window_state

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


def _bind(state: RunState, cls: type[Check[Any]], host: Host, slot: TransportSlot,
          params: BaseModel, timeout: float) -> Callable[[], Any]:
    def call() -> Any:
        ctx: CheckContext[Any] = CheckContext(
            host=host, transport=slot.get(), params=params,
            history=state.history.for_host(host.name, cls.name),
            check_mode=state.check_mode, run_id=state.run_id, timeout=timeout,
            log=logging.getLogger(f"upkeeper.check.{cls.name}"),
        )
        return cls().run(ctx)
    return call
