"""Documentation and sites on the dashboard: a host's latest as-built facts and health
flags (:mod:`upkeeper.asbuilt`), the client's documentation rendered on request by
asbuilt's own renderer, offline sites on the fleet page and the site a host is reached
through (:mod:`upkeeper.sites`).

Scope is the pages' scope: a host's facts are read for the client its results belong
to, documentation pages answer 404 for a client the user may not see, and a
client-scoped user sees only the offline sites that reach their clients' hosts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from upkeeper.web import data
from upkeeper.web.site import site_of, user_of

if TYPE_CHECKING:
    from upkeeper.asbuilt.document import ClientDocument
    from upkeeper.store.history import History
    from upkeeper.web.auth import User

#: Sections with more rows than this are folded (software: hundreds of packages).
FOLD_ROWS = 12
#: Sections whose rows are always folded behind their count.
ALWAYS_FOLDED = frozenset({"software", "services", "roles"})
#: asbuilt's pages are self-contained (inline styles); nothing in them may run.
DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


def host_facts(history: History, host: str, client: str) -> dict[str, Any] | None:
    """The latest snapshot of ``host`` (of ``client``) for the host page: identity,
    sections as tables, health flags; None when the host is not documented."""
    from upkeeper.after_run.asbuilt_step import doc_hygiene
    from upkeeper.asbuilt.categories import category_table
    from upkeeper.asbuilt.document import host_slug, iso, ordered_categories
    from upkeeper.asbuilt.health import findings
    from upkeeper.asbuilt.render import section_view
    from upkeeper.asbuilt.snapshots import docs_at, latest_time

    as_of = latest_time(history)
    if as_of is None:
        return None
    found = docs_at(history, as_of, client, {host})
    if not found:
        return None
    # Two documented machines may have carried the name: the newest is this host.
    doc = max(found.values(), key=lambda d: (d.collected_at, d.identity))
    clean = doc_hygiene().clean
    sections = []
    for cat, section in ordered_categories(doc, category_table()):
        view = section_view(cat, section, clean)
        sections.append({"key": view.key, "title": view.title, "columns": view.columns,
                         "rows": view.rows, "unavailable": view.unavailable,
                         "folded": bool(view.rows) and (view.key in ALWAYS_FOLDED
                                                          or len(view.rows) > FOLD_ROWS)})
    return {"identity": doc.identity, "weak": doc.weak, "platform": doc.platform,
            "collected_at": doc.collected_at, "collected": iso(doc.collected_at),
            "aliases": list(doc.aliases), "sections": sections,
            "health": [f.to_json() for f in findings([doc], time.time(), history)],
            "page": f"/clients/{quote(client)}/docs/hosts/{host_slug(doc)}.html"}


def docs_link(history: History, client: str) -> str | None:
    """The URL of the client's documentation, or None when none of its hosts is
    documented."""
    from upkeeper.asbuilt.snapshots import clients

    return f"/clients/{quote(client)}/docs/index.html" if client in clients(history) else None


def offline_sites(history: History, user: User) -> list[dict[str, Any]]:
    """Sites whose workers are all gone, as ``user`` may see them."""
    if not history.query("SELECT 1 FROM sqlite_master WHERE type='table' AND"
                         " name='site_workers'"):
        return []  # no hub ever ran here: nothing to import, nothing offline
    from upkeeper.sites.hostsite import site_hosts
    from upkeeper.sites.liveness import offline_sites as gone

    found = gone(history)
    if not found:
        return []
    visible = data.visible_hosts(history, user)
    out = []
    for st in found:
        hosts = site_hosts(history, st.site)
        mine = sorted(hosts if visible is None else hosts & set(visible))
        if visible is not None and not mine:
            continue
        out.append({"site": st.site, "last_seen": st.last_seen, "queued": st.queued,
                    "hosts": mine})
    return out


def host_site(history: History, host: str) -> dict[str, Any] | None:
    """The site ``host`` is reached through and whether it is offline now."""
    from upkeeper.sites.hostsite import host_site as lookup

    found = lookup(history, host)
    if found is None:
        return None
    from upkeeper.sites.liveness import offline_sites as gone

    offline = any(st.site == found.site for st in gone(history))
    return {"site": found.site, "worker": found.worker, "state": found.state,
            "published": found.published, "finished": found.finished, "offline": offline}


def _document(request: Request) -> tuple[ClientDocument, Any]:
    """The client's as-built document as of its newest snapshot (404 when the user may
    not see the client or it has no documented hosts) and the text hygiene."""
    from upkeeper.after_run.asbuilt_step import doc_hygiene
    from upkeeper.asbuilt.document import iter_documents
    from upkeeper.asbuilt.snapshots import clients

    site, name = site_of(request), request.path_params["client"]
    if data.client(site.history, user_of(request), name) is None or \
            name not in clients(site.history):
        raise HTTPException(404)
    doc = next(iter_documents(site.history, [name]), None)
    if doc is None:
        raise HTTPException(404)
    return doc, doc_hygiene()


def _page(text: str) -> Response:
    return HTMLResponse(text, headers={"content-security-policy": DOCS_CSP})


def docs_index(request: Request) -> Response:
    """The client's documentation index (``docs build``'s ``index.html``)."""
    from upkeeper.asbuilt.render import render_index

    doc, hygiene = _document(request)
    return _page(render_index(doc, hygiene))


def docs_host(request: Request) -> Response:
    """One host's documentation page (``docs build``'s ``hosts/<slug>.html``)."""
    from upkeeper.asbuilt.document import host_slug
    from upkeeper.asbuilt.render import render_host

    doc, hygiene = _document(request)
    wanted = request.path_params["page"].removesuffix(".html")
    for host in doc.hosts:
        if host_slug(host) == wanted:
            return _page(render_host(doc, host, hygiene))
    raise HTTPException(404)


def routes() -> list[Route]:
    return [Route("/clients/{client}/docs/index.html", docs_index),
            Route("/clients/{client}/docs/hosts/{page}", docs_host)]
