"""Client documentation after a run: snapshot the facts a run collected (so they outlive
result retention) and summarise each client's document for the client report's
``docs`` section. Core's secret masking and remembered clients are handed to
:mod:`upkeeper.asbuilt` here, the layer that knows both.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from upkeeper.after_run.clients import CLIENT_STATE
from upkeeper.models import RunRecord

if TYPE_CHECKING:
    from upkeeper.asbuilt.render import Hygiene
    from upkeeper.plugins import PluginSystem
    from upkeeper.store.history import History

log = logging.getLogger("upkeeper.after_run")
#: Changes listed in the report section (the rest are counted; the document has all).
REPORT_CHANGES = 15


def remembered_client(history: History, host: str) -> str | None:
    value = history.get_state(host, *CLIENT_STATE)
    return str(value) if value else None


def ingest_facts(history: History) -> int:
    """Snapshot every fact document stored since the last ingest (masked)."""
    from upkeeper.asbuilt.snapshots import ingest
    from upkeeper.engine.secrets import mask_secret_data

    return ingest(history, mask=mask_secret_data,
                  client_of=functools.partial(remembered_client, history))


def doc_hygiene() -> Hygiene:
    """Core's secret masking, text cleaning and Markdown escaping for the as-built
    renderers (``docs build`` and the dashboard's documentation pages)."""
    from upkeeper.after_run.report import md_escape
    from upkeeper.after_run.text import clean_text
    from upkeeper.asbuilt.render import Hygiene
    from upkeeper.engine.secrets import mask_secret_data

    return Hygiene(mask=mask_secret_data, clean=lambda v: clean_text(v, single_line=True),
                   md=md_escape)


def run_has_facts(run: RunRecord) -> bool:
    return any(isinstance(r.details, dict) and "facts" in r.details for r in run.results)


def docs_source(history: History,
                plugins: PluginSystem | None) -> Callable[[list[str]], dict[str, Any]]:
    """The report's ``docs`` section for the clients shown; a failure leaves the section
    out (logged), never the report."""
    def source(clients: list[str]) -> dict[str, Any]:
        try:
            return docs_summaries(history, plugins, clients)
        except Exception as exc:
            log.error("the documentation section of the report failed: %s", exc)
            return {}

    return source


def docs_summaries(history: History, plugins: PluginSystem | None,
                   clients: list[str]) -> dict[str, dict[str, Any]]:
    """Per client with documented hosts: hosts, changes since the previous month, drift
    from the baseline and health, for the client report."""
    from upkeeper.asbuilt.api import doc_categories
    from upkeeper.asbuilt.document import build_all, iso
    from upkeeper.asbuilt.snapshots import clients as documented
    from upkeeper.engine.secrets import mask_secret_data

    categories = doc_categories(plugins)
    ingest_facts(history)
    known = set(documented(history))
    out: dict[str, dict[str, Any]] = {}
    for doc in build_all(history, [c for c in clients if c in known], categories=categories):
        out[doc.name] = mask_secret_data({
            "hosts": len(doc.hosts), "as_of": iso(doc.as_of), "since": iso(doc.since),
            "changes": [c.to_json() for c in doc.changes[:REPORT_CHANGES]],
            "changes_total": len(doc.changes),
            "baseline_at": None if doc.baseline_at is None else iso(doc.baseline_at),
            "drift_total": len(doc.drift),
            "health": [f.to_json() for f in doc.findings]})
    return out
