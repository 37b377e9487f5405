"""The site watch of ``serve --hub``: a site whose workers all went silent raises one
"site offline" alert, and one recovery when a worker is heard again, even when no run is
scheduled for it at that moment.

The alert goes through the ordinary notification channels of each served playbook that
covers the site's hosts (its ``notify:``), as the same per-host reachability result a
run records for an offline site (check ``upkeeper.host``, "unreachable: site offline
..."). Alert state is the channels' own (kept in history), so a run that finds the site
still offline does not tell it again, a restart of ``serve`` does not repeat it, and
the run that finds the hosts reachable does not repeat the recovery. Unreachable hosts
are grouped one message per client, so a site is one message, not one per host.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from upkeeper.after_run import ledger
from upkeeper.after_run.alerts import HOST_CHECK, HOST_NAME
from upkeeper.after_run.context import RunContext
from upkeeper.after_run.delivery import Delivery, notify
from upkeeper.after_run.notify_config import parse_notify
from upkeeper.engine.playbook import Playbook
from upkeeper.models import Host, Result, RunRecord, Status
from upkeeper.plugins import PluginSystem
from upkeeper.sites.jobs import site_of
from upkeeper.store.history import History

log = logging.getLogger("upkeeper.sites")


class _Liveness(Protocol):
    last_seen: dict[str, float]

    def offline(self, site: str, now: float | None = None) -> bool: ...


@dataclass
class Served:
    """What the daemon serves now: its playbooks, inventory and plugins."""

    playbooks: Sequence[Playbook] | None  # None until the daemon's first load
    inventory: Any
    plugins: PluginSystem


class SiteWatch:
    """Checks the sites' liveness every ``interval`` seconds in a thread (or call
    :meth:`tick`); ``served`` is read on every tick, so reloads are followed."""

    #: One tick at a time in this process, across instances: two deciding at once would
    #: both see a site's change before either recorded its alert, and both tell it.
    _ticking = threading.Lock()

    def __init__(self, hub: _Liveness, history: History, served: Callable[[], Served], *,
                 interval: float = 5.0) -> None:
        self.hub, self.history, self.served, self.interval = hub, history, served, interval
        self.known: dict[str, bool] = {}  # site -> offline at the last tick
        self.deliveries: list[Delivery] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="upkeeper-site-watch")

    def start(self) -> SiteWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # never stops the daemon; tried again next tick
                log.exception("site watch failed")

    def tick(self, now: float | None = None) -> list[Delivery]:
        """Tell the channels of every site whose state changed since the last tick (the
        first tick tells whatever the channels were not told yet)."""
        with SiteWatch._ticking:
            return self._tick(now)

    def _tick(self, now: float | None) -> list[Delivery]:
        now = now or time.time()
        out: list[Delivery] = []
        if self.served().playbooks is None:
            return out  # nothing loaded yet: tell it once there is someone to tell
        for site in sorted(dict(self.hub.last_seen)):  # sites that had a worker
            offline = self.hub.offline(site, now)
            before = self.known.get(site)
            if before == offline:
                continue
            self.known[site] = offline
            if before is not None or offline:
                log.log(logging.WARNING if offline else logging.INFO, "site %s %s", site,
                        "offline: its workers went silent" if offline else "back online")
            out += self._tell(site, offline, now)
        self.deliveries += out
        return out

    def _tell(self, site: str, offline: bool, now: float) -> list[Delivery]:
        served = self.served()
        seen = datetime.fromtimestamp(self.hub.last_seen.get(site, now), timezone.utc)
        if offline:
            result = Result(Status.UNKNOWN, f"unreachable: site offline: no worker of site "
                            f"{site} heard since {seen:%Y-%m-%d %H:%M:%S} UTC",
                            check=HOST_CHECK, name=HOST_NAME)
        else:
            result = Result(Status.OK, f"reachable: a worker of site {site} is back",
                            check=HOST_CHECK, name=HOST_NAME)
        out: list[Delivery] = []
        for pb in served.playbooks or ():
            if pb.notify is None:
                continue
            try:
                hosts = [h for h in served.inventory.select(pb.hosts) if site_of(h) == site]
            except Exception as exc:  # a pattern this inventory cannot serve
                log.debug("site watch: %s: %s", pb.name, exc)
                continue
            if hosts:
                out += self._notify(pb, hosts, result, served, site)
        return out

    def _notify(self, pb: Playbook, hosts: list[Host], template: Result, served: Served,
                site: str) -> list[Delivery]:
        try:
            cfg = parse_notify(pb.notify)
        except ValueError as exc:
            log.error("%s: notify: %s", pb.path, exc)
            return []
        if cfg is None:
            return []
        run = RunRecord(run_id=f"site-watch:{site}:{time.time():.0f}", playbook=pb.name,
                        meta={"trigger": "site-watch", "site": site})
        run.hosts = {h.name: h for h in hosts}
        run.finished = run.started
        results = [Result(template.status, template.summary, host=h.name,
                          check=template.check, name=template.name, started=run.started)
                   for h in hosts]
        ctx = RunContext.for_run(run, pb, self.history, served.plugins,
                                 inventory=served.inventory, sleep=self._stop.wait)
        deliveries = notify(run, cfg, ctx, results)
        try:
            ledger.record(self.history, run.run_id, deliveries, ctx.now)
        except Exception as exc:
            log.error("recording the site watch's deliveries failed: %s", exc)
        return deliveries
