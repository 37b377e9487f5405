"""The fix pass: per finished host, match failing results to the playbook's fixes, then
plan -> (approve) -> apply -> verify within budgets, recording every step in the audit.

It is the runner's ``host_finished`` seam, so it runs in the host's own worker, on the
host whose check failed, through that host's own transport; verify re-runs the check
that failed the same way. Nothing here ever picks another host.
"""

from __future__ import annotations

import getpass
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from upkeeper.bounded import run_bounded
from upkeeper.engine.hostrun import FinishedHost
from upkeeper.engine.windows import window_state
from upkeeper.models import Result, Status
from upkeeper.remediation.approvals import Approvals
from upkeeper.remediation.audit import AuditLog, _HistoryLike
from upkeeper.remediation.budget import DEFAULT_CLIENT_CAP, DEFAULT_GLOBAL_CAP, Budgets
from upkeeper.remediation.fix import FixContext, FixRefused, Plan
from upkeeper.remediation.spec import Binding

__all__ = ["DEFAULT_CLIENT_CAP", "DEFAULT_GLOBAL_CAP", "FixOutcome", "FixPass",
           "default_actor"]

log = logging.getLogger("upkeeper.remediation")

#: Seconds a trigger waits for its host's lease or a cap to free up before deferring.
LEASE_WAIT = 60.0


def default_actor(how: str = "run") -> str:
    """Who triggers: ``run:<user>`` (``upkeeper run``) or ``schedule:<user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{how}:{user}"


@dataclass
class FixOutcome:
    """What became of one trigger. ``outcome`` is one of fixed, failed, planned,
    awaiting-approval, refused, deferred, settling, exhausted, nothing-to-do."""

    host: str
    client: str
    check: str
    name: str
    fix: str
    outcome: str
    summary: str
    before: dict[str, Any] = field(default_factory=dict)
    after: list[dict[str, Any]] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    approval: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "client": self.client, "check": self.check,
                "name": self.name, "fix": self.fix, "outcome": self.outcome,
                "summary": self.summary, "plan": self.plan, "approval": self.approval,
                "before": self.before, "after": self.after}


def _result(r: Result) -> dict[str, Any]:
    return {"status": r.status.value, "summary": r.summary, "name": r.name,
            "details": r.details}


class FixPass:
    """The ``host_finished`` seam of a run with fixes.

    :param bindings: the playbook's resolved fixes (:func:`~upkeeper.remediation.spec.bindings`).
    :param actor: who or what triggered the run (recorded in every audit record).
    :param clock: time source for budgets, approvals and audit (tests inject it).
    """

    def __init__(self, db: _HistoryLike, bindings: list[Binding], *, actor: str,
                 client_cap: int = DEFAULT_CLIENT_CAP,
                 global_cap: int = DEFAULT_GLOBAL_CAP, lease_wait: float = LEASE_WAIT,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.bindings = bindings
        self.actor = actor
        self.client_cap, self.global_cap, self.lease_wait = client_cap, global_cap, lease_wait
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.db = db
        self.audit = AuditLog(db, clock=self.clock)
        self.approvals = Approvals(db, audit=self.audit, clock=self.clock)
        self.budgets = Budgets(db, clock=self.clock)
        self.outcomes: list[FixOutcome] = []
        self._lock = threading.Lock()

    def __call__(self, finished: FinishedHost) -> None:
        audit = AuditLog(self.db, redact=finished.redactor.obj, clock=self.clock)
        results = {index: rs for index, _spec, rs in finished.checks}
        for binding in self.bindings:
            for result in results.get(binding.index, []):
                if finished.stop.is_set():
                    return
                if binding.handles(result):
                    self._record(self._trigger(finished, binding, result, audit), finished)

    def _record(self, outcome: FixOutcome, finished: FinishedHost) -> None:
        with self._lock:
            self.outcomes.append(outcome)
            if finished.run is not None:
                finished.run.meta.setdefault("remediation", []).append(
                    finished.redactor.obj(outcome.to_dict()))

    def _trigger(self, finished: FinishedHost, b: Binding, result: Result,
                 audit: AuditLog) -> FixOutcome:
        host = finished.host
        client = str(host.vars.get("client") or "")
        fix = b.cls.name
        subject = f"{host.name}/{result.name or result.check}/{fix}"
        base = {"run_id": finished.run_id, "trigger": _result(result), "tier": b.tier}

        def outcome(kind: str, summary: str, **extra: Any) -> FixOutcome:
            return FixOutcome(host.name, client, result.check, result.name, fix, kind,
                              summary, before=_result(result), **extra)

        def note(kind: str, data: dict[str, Any]) -> None:
            audit.append(kind, self.actor, subject, {**base, **data}, host=host.name,
                         client=client or None)

        if not b.cls.supports(host):
            note("refuse", {"reason": f"not supported on {host.os_family}"})
            return outcome("refused", f"{fix} does not run on {host.os_family}")
        budget = b.spec.budget

        def within_budget(seen_before: float | None) -> tuple[float, FixOutcome | None]:
            verdict = self.budgets.consider(host.name, fix, attempts=budget.attempts,
                                            per=budget.per, backoff=budget.backoff,
                                            quarantine_after=budget.quarantine_after,
                                            seen_before=seen_before)
            if verdict.allowed:
                return verdict.at, None
            if verdict.exhausted:
                note("exhausted", {"reason": verdict.reason})
                return verdict.at, outcome("exhausted", f"remediation exhausted: {fix} on "
                                                        f"{host.name}: {verdict.reason}")
            note("settle" if verdict.settling else "refuse", {"reason": verdict.reason})
            return verdict.at, outcome("settling" if verdict.settling else "refused",
                                       verdict.reason)

        seen = 0.0
        if not finished.check_mode:
            seen, blocked_by_budget = within_budget(None)
            if blocked_by_budget is not None:
                return blocked_by_budget
        ctx: FixContext[Any] = FixContext(host=host, transport=finished.transport(),
                                          params=b.params, result=result,
                                          check_mode=finished.check_mode,
                                          timeout=b.cls.timeout, now=self.clock(),
                                          log=logging.getLogger(f"upkeeper.fix.{fix}"),
                                          check_params=finished.params(b.index))
        try:
            plan = self._bounded(lambda: b.cls().plan(ctx), b.cls.timeout, f"plan {fix}")
        except FixRefused as exc:
            note("refuse", {"reason": str(exc), "commands": ctx.commands})
            return outcome("refused", str(exc))
        except Exception as exc:
            note("plan-failed", {"error": f"{type(exc).__name__}: {exc}",
                                 "commands": ctx.commands})
            return outcome("failed", f"planning {fix} failed: {exc}")
        if plan is None:
            note("noop", {"commands": ctx.commands})
            return outcome("nothing-to-do", f"{fix}: nothing to do")
        plan_dict, digest = plan.to_dict(), plan.digest()
        note("check-plan" if finished.check_mode else "plan",
             {"plan": plan_dict, "plan_hash": digest, "commands": ctx.commands})
        if finished.check_mode:
            return outcome("planned", f"would {plan.summary} (check mode)", plan=plan_dict)
        if b.tier == "never":
            return outcome("planned", f"plan only (tier never): {plan.summary}",
                           plan=plan_dict)
        check = result.name or result.check
        if b.tier == "approve" and not any(
                a.plan_hash == digest and a.fix == fix and a.check == check
                for a in self.approvals.approved(host=host.name)):
            # Masked like every other record of the run: the queue is shown on the
            # dashboard, and apply uses the fresh plan (matched by hash), never this copy.
            asked = self.approvals.request(
                host=host.name, client=client or None, check=check, fix=fix,
                plan=finished.redactor.obj(plan_dict), plan_hash=digest, actor=self.actor,
                ttl=b.spec.approval_ttl)
            return outcome("awaiting-approval", f"{plan.summary}: waits for approval "
                           f"(upkeeper fixes approve {asked.id})", plan=plan_dict,
                           approval=asked.id)
        blocked = self._window_block(b, finished)
        if blocked:  # an approval stays approved for the next run inside the window
            note("refuse", {"reason": blocked, "plan_hash": digest})
            return outcome("refused", blocked, plan=plan_dict)
        owner = f"{finished.run_id}:{secrets.token_hex(4)}"
        refused = self._lease(host.name, client, fix, owner, b.cls.timeout)
        if refused:
            note("defer", {"reason": refused, "plan_hash": digest})
            return outcome("deferred", refused, plan=plan_dict)
        try:
            # Again under the lease: triggers of this host waiting for it all passed the
            # first look before any of them ran, so only this one sees the fix that ran
            # meanwhile (budget and settle would be overrun otherwise).
            _, blocked_by_budget = within_budget(seen)
            if blocked_by_budget is not None:
                return blocked_by_budget
            approval = None
            if b.tier == "approve":
                approval = self.approvals.take(host=host.name, check=check, fix=fix,
                                               plan_hash=digest, actor=self.actor)
                if approval is None:  # denied or expired meanwhile
                    note("refuse", {"reason": "the approval was withdrawn",
                                    "plan_hash": digest})
                    return outcome("refused", "the approval was withdrawn", plan=plan_dict)
            return self._apply_verify(finished, b, result, plan, ctx, note, outcome,
                                      approval.id if approval else None)
        finally:
            self.budgets.release_lease(host.name, owner)

    def _apply_verify(self, finished: FinishedHost, b: Binding, result: Result, plan: Plan,
                      ctx: FixContext[Any], note: Callable[[str, dict[str, Any]], None],
                      outcome: Callable[..., FixOutcome],
                      approval: str | None) -> FixOutcome:
        fix, budget = b.cls.name, b.spec.budget
        plan_dict, digest = plan.to_dict(), plan.digest()
        self.budgets.begin(finished.host.name, fix, budget.per)
        note("apply-begin", {"plan_hash": digest, "approval": approval})
        ctx.commands.clear()
        ctx.check_mode = False
        error = ""
        try:
            said = self._bounded(lambda: b.cls().apply(ctx, plan), b.cls.timeout,
                                 f"apply {fix}")
        except Exception as exc:
            said, error = "", f"{type(exc).__name__}: {exc}"
        note("apply", {"plan_hash": digest, "commands": ctx.commands, "said": said,
                       "error": error})
        after = [] if error else finished.rerun(b.index)
        if error:
            verified, why = False, f"apply failed: {error}"
        else:
            own = b.cls().judge(plan, result, after)
            verified, why = own if own is not None else _verdict(result, after,
                                                                 b.cls.identity)
        note("verify", {"plan_hash": digest, "before": _result(result),
                        "after": [_result(r) for r in after], "verified": verified,
                        "reason": why})
        settle = (b.spec.settle.total_seconds() if b.spec.settle is not None
                  else b.cls.settle)
        exhausted = self.budgets.finish(finished.host.name, fix, succeeded=verified,
                                        settle=settle,
                                        quarantine_after=budget.quarantine_after)
        after_dicts = [_result(r) for r in after]
        if verified:
            return outcome("fixed", f"fixed: {plan.summary}", plan=plan_dict,
                           after=after_dicts, approval=approval)
        if exhausted:
            note("exhausted", {"reason": f"{budget.quarantine_after} failed attempts"})
            return outcome("exhausted", f"remediation exhausted: {fix} on "
                           f"{finished.host.name}: {why}", plan=plan_dict, after=after_dicts)
        return outcome("failed", f"{plan.summary}: {why}", plan=plan_dict, after=after_dicts,
                       approval=approval)

    def _bounded(self, fn: Callable[[], Any], limit: float, what: str) -> Any:
        done = run_bounded(fn, limit, name=f"upkeeper-fix-{what}")
        if not done.finished:
            raise TimeoutError(f"{what} did not finish within {limit:g}s")
        if done.error is not None:
            if isinstance(done.error, Exception):
                raise done.error
            raise RuntimeError(f"{what} raised {type(done.error).__name__}")
        return done.value

    def _window_block(self, b: Binding, finished: FinishedHost) -> str | None:
        if not b.cls.needs_window or b.spec.safe_anytime:
            return None
        host = finished.host
        if not host.vars.get("maintenance_windows"):
            return (f"{b.cls.name} changes {host.name}, which has no maintenance_windows"
                    " (give it windows, or mark the fix safe_anytime: true)")
        try:
            state = window_state(host.vars, self.clock())
        except ValueError as exc:
            return f"invalid maintenance window for {host.name}: {exc}"
        if state.inside:
            return None
        nxt = f"; next window starts {state.next_start:%Y-%m-%d %H:%M %Z}" \
            if state.next_start else ""
        return f"outside maintenance window ({state.reason}){nxt}"

    def _lease(self, host: str, client: str, fix: str, owner: str, ttl: float) -> str | None:
        deadline = time.monotonic() + self.lease_wait
        while True:
            refused = self.budgets.acquire(host, client, fix, owner,
                                           client_cap=self.client_cap,
                                           global_cap=self.global_cap, ttl=ttl + 60)
            if refused is None or time.monotonic() >= deadline:
                return refused
            time.sleep(0.05)


def _verdict(before: Result, after: list[Result],
             identity: tuple[str, ...] = ()) -> tuple[bool, str]:
    """Did the check that failed stop failing? The re-run's results of the same name
    (and about the same item: equal ``identity`` details) must all be OK."""
    from upkeeper.remediation.fix import _dig

    same = [r for r in after if (r.name or r.check) == (before.name or before.check)
            and all(_dig(r.details, k) == _dig(before.details, k) for k in identity)]
    if not same:
        return False, f"the check no longer reports {before.name or before.check}"
    worst = Status.worst(r.status for r in same)
    if worst is Status.OK:
        return True, "the check passes now"
    return False, f"the check still says {worst.value}: {same[0].summary}"
