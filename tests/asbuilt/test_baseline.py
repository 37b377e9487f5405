"""The approved baseline, and snapshots taken from stored results: a new local admin or
listening port shows up as drift after one collection."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tests.asbuilt.factsgen import DAY, NOW, doc, later
from upkeeper.after_run.asbuilt_step import ingest_facts
from upkeeper.asbuilt.baseline import approve
from upkeeper.asbuilt.document import build_client
from upkeeper.models import Result, RunRecord, Status
from upkeeper.store.history import History


def _collect(hist: History, facts: dict[str, Any], run_id: str,
             client: str = "acme") -> None:
    """What a run of docs.collect leaves in history: a result with the facts, and the
    host's client remembered."""
    when = datetime.fromtimestamp(facts["collected_at"], tz=timezone.utc)
    hist.start_run(RunRecord(run_id=run_id, playbook="docs", started=when))
    hist.add_result(run_id, Result(Status.OK, "facts collected", details={"facts": facts},
                                   host=facts["host"], check="docs.collect", started=when))
    hist.set_state(facts["host"], "_upkeeper", "client", client)


def test_new_admin_and_port_show_as_drift_after_one_collection(hist: History) -> None:
    first = doc("web1", "m-web1", NOW - 2 * DAY)
    _collect(hist, first, "r1")
    assert ingest_facts(hist) == 1
    assert ingest_facts(hist) == 0  # idempotent: each result is snapshotted once
    approve(hist, "acme", as_of=NOW, approved_at=NOW)
    assert build_client(hist, "acme", as_of=NOW, since=NOW - DAY).drift == []

    def intrude(d: dict[str, Any]) -> None:
        d["sections"]["admins"]["items"].append({"name": "eve", "group": "sudo"})
        d["sections"]["ports"]["items"].append({"proto": "tcp", "address": "0.0.0.0",
                                                "port": 4444, "process": "nc"})
    _collect(hist, later(first, 1, intrude), "r2")
    ingest_facts(hist)
    drift = build_client(hist, "acme", as_of=NOW, since=NOW - DAY).drift
    assert sorted((c.group, c.action, c.item) for c in drift) == [
        ("admins", "added", "eve sudo"), ("ports", "opened", "tcp 0.0.0.0 4444")]


def test_baseline_is_per_client_and_reapproval_clears_drift(hist: History) -> None:
    _collect(hist, doc("web1", "m-web1", NOW - DAY), "r1")
    _collect(hist, doc("db1", "m-db1", NOW - DAY), "r2", client="globex")
    ingest_facts(hist)
    assert approve(hist, "acme", as_of=NOW, approved_at=NOW) == 1
    _collect(hist, doc("web2", "m-web2", NOW), "r3")
    ingest_facts(hist)
    d = build_client(hist, "acme", as_of=NOW, since=NOW - DAY)
    assert [(c.action, c.host) for c in d.drift] == [("appeared", "web2")]
    assert build_client(hist, "globex", as_of=NOW, since=NOW - DAY).baseline_at is None
    approve(hist, "acme", as_of=NOW, approved_at=NOW)
    assert build_client(hist, "acme", as_of=NOW, since=NOW - DAY).drift == []


def test_unreadable_facts_are_skipped(hist: History) -> None:
    when = datetime.fromtimestamp(NOW, tz=timezone.utc)
    hist.start_run(RunRecord(run_id="r1", playbook="docs", started=when))
    for details in ({"facts": "nope"}, {"facts": {"schema_version": 99, "sections": {}}},
                    {"facts": {"schema_version": 1}}):
        hist.add_result("r1", Result(Status.OK, "x", details=details, host="h",
                                     check="docs.collect", started=when))
    assert ingest_facts(hist) == 0


def test_two_ingesters_at_once_store_each_result_once(hist: History, tmp_path) -> None:
    import threading

    for n in range(30):
        _collect(hist, doc(f"h{n}", f"m{n}", NOW - DAY), f"r{n}")
    others = [History(hist.path) for _ in range(2)]
    counts: list[int] = []
    threads = [threading.Thread(target=lambda h=h: counts.append(ingest_facts(h)))
               for h in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(counts) == 30
    assert len(hist.query("SELECT id FROM asbuilt_snapshots")) == 30
    for h in others:
        h.close()
