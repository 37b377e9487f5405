"""The monthly report's documentation changes come from the as-built snapshots: the
structural changes of the period, dated by the day they were collected, volatile noise
never, another client's never; a host silent for the whole period is "no longer
reporting"; a client without documented hosts reads "not tracked"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.asbuilt.factsgen import doc, later, store
from tests.monthly.helpers import at
from tests.monthly.test_report import AFTER, NOV, november
from upkeeper.monthly.docs import asbuilt_changes, describe, report_sources
from upkeeper.monthly.report import build_client_report
from upkeeper.store.history import History

OCT28 = at("2026-10-28 03:00").timestamp()


def _days(start: float, when: datetime) -> float:
    return (when.timestamp() - start) / 86400


def documented(history: History) -> None:
    """web1 and db1 of acme documented on Oct 28; web1 changes on Nov 10 and Nov 20
    with volatile noise in between; db1 is not collected again; globex's mail changes
    in November too."""
    web1 = doc("web1", "m-web1", OCT28)
    store(history, web1)
    store(history, doc("db1", "m-db1", OCT28))
    mail = doc("mail", "m-mail", OCT28)
    store(history, mail, client="globex")

    def ports_and_admins(d: dict[str, Any]) -> None:
        d["sections"]["ports"]["items"].append({"proto": "tcp", "address": "0.0.0.0",
                                               "port": 8080, "process": "java"})
        d["sections"]["admins"]["items"].append({"name": "mallory", "group": "sudo"})

    nov10 = later(web1, _days(OCT28, at("2026-11-10 03:00")), ports_and_admins)
    store(history, nov10)
    store(history, later(nov10, 2))  # volatile noise only (uptime, free space, load)

    def upgrade(d: dict[str, Any]) -> None:
        for p in d["sections"]["software"]["items"]:
            if p["name"] == "nginx":
                p["version"] = "1.24.0"

    store(history, later(nov10, 10, upgrade))  # Nov 20
    store(history, later(mail, _days(OCT28, at("2026-11-05 03:00")), ports_and_admins),
          client="globex")


def test_changes_of_the_period_dated_by_collection(history: History) -> None:
    november(history)
    documented(history)
    source = asbuilt_changes(history, "acme")
    assert source is not None
    r = build_client_report(history, "acme", NOV, now=AFTER, docs=source)
    got = [(d.when.strftime("%Y-%m-%d"), d.host, d.what) for d in r.doc_changes or []]
    assert got == [
        ("2026-11-01", "db1", "no longer reporting"),
        ("2026-11-10", "web1", "admins: added mallory sudo"),
        ("2026-11-10", "web1", "ports: opened tcp 0.0.0.0 8080"),
        ("2026-11-20", "web1", "software: upgraded nginx amd64 (1.18.0 → 1.24.0)"),
    ]


def test_client_without_documentation_is_not_tracked(history: History) -> None:
    november(history)
    assert asbuilt_changes(history, "acme") is None
    assert report_sources(history, "acme").docs is None
    r = build_client_report(history, "acme", NOV, now=AFTER,
                            docs=report_sources(history, "acme").docs)
    assert r.doc_changes is None


def test_describe_a_fields_change() -> None:
    from upkeeper.asbuilt.changes import Change

    c = Change("os", "os", "changed", "web1", "m", "version", {"version": "22.04"},
               {"version": "24.04"})
    assert describe(c) == "os: changed version (22.04 → 24.04)"
