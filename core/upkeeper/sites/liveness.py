"""Which sites are live: workers' last heartbeats (recorded by the hub), queued jobs and
last results per site. :func:`site_overview` is what ``upkeeper sites list`` shows;
:func:`offline_sites` is what makes ``upkeeper status`` exit 1."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from upkeeper.sites import subjects
from upkeeper.sites.store import QUEUED
from upkeeper.sites.streams import SiteSettings
from upkeeper.store.history import History


@dataclass
class WorkerSeen:
    name: str
    last_seen: float
    live: bool


@dataclass
class SiteStatus:
    """One site: its workers (live or last seen), jobs queued (from JetStream when given,
    else from the hub's records), the oldest queued job's age, the last result's time."""

    site: str
    workers: list[WorkerSeen] = field(default_factory=list)
    queued: int = 0
    oldest_queued_age: float | None = None
    last_result: float | None = None

    @property
    def live_workers(self) -> int:
        return sum(1 for w in self.workers if w.live)

    @property
    def offline(self) -> bool:
        return bool(self.workers) and self.live_workers == 0

    @property
    def last_seen(self) -> float | None:
        return max((w.last_seen for w in self.workers), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "offline": self.offline, "live_workers": self.live_workers,
                "last_seen": self.last_seen, "queued": self.queued,
                "oldest_queued_age_s": self.oldest_queued_age,
                "last_result": self.last_result,
                "workers": [w.__dict__ for w in self.workers]}


def _tables_exist(history: History) -> bool:
    return bool(history.query("SELECT 1 FROM sqlite_master WHERE name='site_workers'"))


def _local_overview(history: History, settings: SiteSettings, now: float,
                    sites: set[str]) -> dict[str, SiteStatus]:
    out: dict[str, SiteStatus] = {s: SiteStatus(s) for s in sites}
    if not _tables_exist(history):
        return out
    for row in history.query("SELECT site, worker, last_seen FROM site_workers"):
        st = out.setdefault(row["site"], SiteStatus(row["site"]))
        st.workers.append(WorkerSeen(row["worker"], float(row["last_seen"]),
                                     now - float(row["last_seen"]) <= settings.offline_after))
    for row in history.query(
            "SELECT site, count(*) AS n, min(published) AS oldest FROM site_jobs"
            " WHERE state=? GROUP BY site", (QUEUED,)):
        st = out.setdefault(row["site"], SiteStatus(row["site"]))
        st.queued, st.oldest_queued_age = int(row["n"]), now - float(row["oldest"])
    for row in history.query(
            "SELECT site, max(finished) AS last FROM site_jobs WHERE finished IS NOT NULL"
            " AND state != ? GROUP BY site", (QUEUED,)):
        st = out.setdefault(row["site"], SiteStatus(row["site"]))
        st.last_result = float(row["last"]) if row["last"] is not None else None
    return out


async def site_overview(history: History, js: JetStreamContext | None = None, *,
                        sites: set[str] | None = None,
                        settings: SiteSettings | None = None) -> list[SiteStatus]:
    """Every site known to the hub's history (plus ``sites``), sorted by name. With
    ``js``, queued jobs and the oldest one's age come from the site's jobs stream."""
    now = time.time()
    out = _local_overview(history, settings or SiteSettings.from_env(), now, sites or set())
    if js is not None:
        for st in out.values():
            try:
                info = await js.stream_info(subjects.jobs_stream(st.site))
            except NotFoundError:
                continue
            st.queued = int(info.state.messages)
            st.oldest_queued_age = None
            if st.queued:
                first = await _first_time(js, subjects.jobs_stream(st.site),
                                          int(info.state.first_seq or 0))
                st.oldest_queued_age = max(0.0, now - first) if first is not None else None
    return [out[k] for k in sorted(out)]


async def _first_time(js: JetStreamContext, stream: str, first_seq: int) -> float | None:
    """When the stream's oldest message was stored (epoch), as the server stamped it.
    nats.py's StreamState drops the server's ``first_ts``, so the message itself is read
    (its time, not its body); None when it is gone meanwhile or cannot be read."""
    if first_seq <= 0:
        return None
    try:
        msg = await js.get_msg(stream, seq=first_seq)
    except Exception:  # acked and removed in between, or the server is restarting
        return None
    return msg.time.timestamp() if msg.time is not None else None


def offline_sites(history: History, settings: SiteSettings | None = None,
                  now: float | None = None) -> list[SiteStatus]:
    """Sites that had workers and have none live now."""
    found = _local_overview(history, settings or SiteSettings.from_env(),
                            now or time.time(), set())
    return [st for st in found.values() if st.offline]
