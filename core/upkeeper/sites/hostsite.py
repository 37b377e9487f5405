"""Which site a host is reached through: the newest job the hub published for it (the
``site_jobs`` table of :mod:`upkeeper.sites.store`), and the hosts of each site. What
the dashboard shows on a host page ("reached through site X") and how it scopes the
offline sites a client's own staff may see."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from upkeeper.store.history import History

_INDEX = "CREATE INDEX IF NOT EXISTS site_jobs_host ON site_jobs (host, published)"


@dataclass(frozen=True)
class HostSite:
    """The site of a host's newest job, the worker that ran it (None: not yet run) and
    what became of it (``queued``, ``done``, ``expired``, ``dead``)."""

    site: str
    worker: str | None
    state: str
    published: float
    finished: float | None


_INDEXED: weakref.WeakSet[History] = weakref.WeakSet()


def _ready(history: History) -> bool:
    """Whether a hub ever ran here; the host index made once per connection (a host
    page looks jobs up by host, the hub's own index is by site)."""
    if history in _INDEXED:
        return True
    if not history.query("SELECT 1 FROM sqlite_master WHERE type='table' AND"
                         " name='site_jobs'"):
        return False
    with history.transaction() as db:
        db.execute(_INDEX)
    _INDEXED.add(history)
    return True


def host_site(history: History, host: str) -> HostSite | None:
    """The site ``host`` was last reached through, or None (reached directly, or no hub
    ever ran on this history)."""
    if not _ready(history):
        return None
    rows = history.query("SELECT site, worker, state, published, finished FROM site_jobs"
                         " WHERE host=? ORDER BY published DESC LIMIT 1", (host,))
    if not rows:
        return None
    r = rows[0]
    return HostSite(r["site"], r["worker"], r["state"], float(r["published"]),
                    None if r["finished"] is None else float(r["finished"]))


def site_hosts(history: History, site: str) -> set[str]:
    """The hosts whose newest job went to ``site`` (a host moved to another site is
    that site's now)."""
    if not _ready(history):
        return set()
    rows = history.query(
        "SELECT j.host FROM site_jobs j WHERE j.site=? GROUP BY j.host HAVING"
        " MAX(j.published) >= (SELECT MAX(k.published) FROM site_jobs k WHERE"
        " k.host=j.host)", (site,))
    return {r[0] for r in rows}
