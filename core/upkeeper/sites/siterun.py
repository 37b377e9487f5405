"""One run's site hosts (the runner's :class:`~upkeeper.engine.runner.RemoteHosts`
seam): their jobs published, the run waiting for results until its deadline, and the
checks nobody answered recorded UNKNOWN ("expired", or "site offline" when no worker of
the site was heard). The :class:`~upkeeper.sites.hub.Hub` routes results here."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

from nats.js import JetStreamContext

from upkeeper.engine.hostrun import RunState
from upkeeper.models import Host, Result, Status, Unreachable
from upkeeper.plugins import UnknownNameError
from upkeeper.sites import lease, store, subjects
from upkeeper.sites.fixes import hub_fix_state
from upkeeper.sites.jobs import EXPIRED, Job, build_job, job_id, lease_key, site_of
from upkeeper.store.history import History

log = logging.getLogger("upkeeper.sites")
T = TypeVar("T")
#: Seconds the hub retries publishing jobs the server did not take (it may be restarting).
PUBLISH_RETRY = 60.0


class HubLink(Protocol):
    """What a run needs of the hub."""

    history: History
    js: JetStreamContext | None
    lock: threading.Lock
    pending: dict[str, Pending]

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T: ...

    def ensure_site(self, site: str) -> None: ...

    def offline(self, site: str, now: float | None = None) -> bool: ...


@dataclass
class Pending:
    run: SiteRun
    host: Host
    site: str


@dataclass
class _RunWait:
    left: set[str] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)


class SiteRun:
    """:class:`~upkeeper.engine.runner.RemoteHosts` for one run (see the module doc)."""

    def __init__(self, hub: HubLink, deadline: float) -> None:
        self.hub, self.deadline = hub, deadline
        self.state: RunState | None = None
        self.wait = _RunWait()

    def claims(self, host: Host) -> bool:
        return site_of(host) is not None

    def run(self, state: RunState, hosts: Sequence[Host]) -> None:
        self.state = state
        by_site: dict[str, list[Host]] = defaultdict(list)
        for host in hosts:
            site = site_of(host) or ""
            try:
                subjects.check_site(site)
            except subjects.SiteNameError as exc:
                state.fail_rest(host, 0, Status.UNKNOWN, f"host {host.name}: {exc}",
                                state.redactor)
                continue
            by_site[site].append(host)
        self._publish(state, by_site)
        while self.wait.left and not state.stop.is_set():
            if self.wait.done.wait(min(0.5, max(0.0, self.deadline - time.time()))):
                break
            if time.time() >= self.deadline:
                break
        with self.hub.lock:
            left = [self.hub.pending.pop(j) for j in list(self.wait.left)
                    if j in self.hub.pending]
        self._withdraw(state, left)
        for pending in left:
            if state.stop.is_set():
                reason = "run interrupted before site workers answered"
            elif self.hub.offline(pending.site):
                reason = (f"site offline: no worker of site {pending.site} answered "
                          "before the run's deadline")
                if state.run is not None:  # told once per client, not once per check
                    state.run.unreachable[pending.host.name] = Unreachable(
                        reason, Status.UNKNOWN, frozenset(s.label for s in state.pb.checks))
            else:
                when = datetime.fromtimestamp(self.deadline, timezone.utc)
                reason = (f"{EXPIRED}: site {pending.site} did not run it before its "
                          f"deadline {when:%Y-%m-%d %H:%M:%S} UTC")
            store.finish_job(self.hub.history, job_id(state.run_id, pending.host.name),
                             pending.site, store.EXPIRED)
            self.fail(pending, reason)

    def _withdraw(self, state: RunState, left: Sequence[Pending]) -> None:
        """Jobs the run no longer waits for are withdrawn (their lease created done), so
        a worker that gets one later acks it unrun; one a worker holds runs to its end
        and its result is dropped."""
        js = self.hub.js
        if not left or js is None:
            return

        async def withdraw_all() -> None:
            buckets: dict[str, Any] = {}
            for p in left:
                if p.site not in buckets:
                    buckets[p.site] = await js.key_value(subjects.lease_bucket(p.site))
                await lease.cancel(buckets[p.site],
                                   lease_key(job_id(state.run_id, p.host.name)))

        try:
            self.hub.call(withdraw_all(), 30)
        except Exception as exc:  # workers still refuse jobs past their deadline
            log.warning("withdrawing %d unanswered site jobs: %s", len(left), exc)

    def _publish(self, state: RunState, by_site: dict[str, list[Host]]) -> None:
        jobs: list[Job] = []
        actions = self._has_actions(state)
        for site, hosts in by_site.items():
            try:
                self.hub.ensure_site(site)
            except Exception as exc:
                for host in hosts:
                    state.fail_rest(host, 0, Status.UNKNOWN,
                                    f"site {site}: cannot set up its queue: {exc}",
                                    state.redactor)
                continue
            for host in hosts:
                job = build_job(state.pb, host, site, state.run_id, self.deadline,
                                check_mode=state.check_mode, force=state.force,
                                allow_anytime=state.allow_anytime, has_actions=actions,
                                fix_state=hub_fix_state(state.pb, self.hub.history,
                                                        host.name))
                jobs.append(job)
                with self.hub.lock:
                    self.hub.pending[job.job_id] = Pending(self, host, site)
                    self.wait.left.add(job.job_id)
        if not jobs:
            return
        store.record_published(self.hub.history, [
            (j.job_id, j.run_id, j.site, j.host, j.deadline) for j in jobs])
        js = self.hub.js
        assert js is not None

        async def publish_all() -> None:
            todo, give_up = jobs, min(self.deadline, time.time() + PUBLISH_RETRY)
            while todo:
                now = time.time()
                acks = []
                for j in todo:
                    j.issued = now
                    acks.append(js.publish(subjects.jobs_subject(j.site), j.to_bytes(),
                                           headers={"Nats-Msg-Id": j.job_id}))
                outcomes = await asyncio.gather(*acks, return_exceptions=True)
                failed = [(j, o) for j, o in zip(todo, outcomes, strict=True)
                          if isinstance(o, BaseException)]
                if failed and time.time() > give_up:  # recorded UNKNOWN at the deadline
                    log.error("publishing %d site jobs failed: %s", len(failed), failed[0][1])
                    return
                todo = [j for j, _ in failed]  # Nats-Msg-Id makes a retry harmless
                if todo:
                    await asyncio.sleep(1.0)

        try:
            self.hub.call(publish_all(), PUBLISH_RETRY + 60)
        except Exception as exc:
            log.error("publishing %d site jobs: %s", len(jobs), exc)

    @staticmethod
    def _has_actions(state: RunState) -> bool:
        for spec in state.pb.checks:
            try:
                if state.plugins.registry.check(spec.check).is_action:
                    return True
            except UnknownNameError:
                continue
        return False

    def deliver(self, pending: Pending, decoded: Sequence[tuple[int, Result]],
                outcomes: Sequence[dict[str, Any]] = ()) -> None:
        state = self.state
        assert state is not None
        if outcomes and state.run is not None:  # the fix pass ran at the worker
            state.run.meta.setdefault("remediation", []).extend(
                o for o in outcomes if isinstance(o, dict)
                and o.get("host") == pending.host.name)
        by_index: dict[int, list[Result]] = defaultdict(list)
        for index, r in decoded:
            by_index[index].append(r)
        for index, results in sorted(by_index.items()):
            state.deliver(pending.host.name, index, results, state.redactor)
        self._done(pending)

    def fail(self, pending: Pending, reason: str) -> None:
        state = self.state
        assert state is not None
        state.fail_rest(pending.host, 0, Status.UNKNOWN, reason, state.redactor)
        self._done(pending)

    def _done(self, pending: Pending) -> None:
        state = self.state
        assert state is not None
        with self.hub.lock:
            self.wait.left.discard(job_id(state.run_id, pending.host.name))
            if not self.wait.left:
                self.wait.done.set()
