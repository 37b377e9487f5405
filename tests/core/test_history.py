"""The history database: results with metrics, series, state, runs, and clear errors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from upkeeper.models import Result, RunRecord, Status
from upkeeper.store.history import History, HistoryError

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_results_keep_their_metrics_across_many_rows(tmp_path):
    h = History(tmp_path / "h.db")
    run = RunRecord("r1", "play", started=T0)
    h.start_run(run)
    for i in range(1203):  # more ids than one metrics query takes
        h.add_result("r1", Result(Status.OK, "s", metrics={"a": i, "flag": True},
                                  host=f"h{i}", check="c", started=T0 + timedelta(seconds=i)))
    h.add_result("r1", Result(Status.WARN, "no metrics", host="x", check="c",
                              started=T0 + timedelta(hours=1)))
    results = h.results(run_id="r1", limit=10_000)
    assert len(results) == 1204
    assert results[0].host == "x" and results[0].metrics == {}
    by_host = {r.host: r.metrics for r in results}
    assert by_host["h1202"] == {"a": 1202.0}  # booleans are not stored as metrics
    assert by_host["h0"] == {"a": 0.0}


def test_series_state_and_runs(tmp_path):
    h = History(tmp_path / "h.db")
    run = RunRecord("r1", "play", started=T0)
    h.start_run(run)
    for day in range(5):
        h.add_result("r1", Result(Status.OK, "s", metrics={"/:used_bytes": 100 + day},
                                  host="web", check="disk.usage",
                                  started=T0 + timedelta(days=day)))
    series = h.series("web", "/:used_bytes", since=T0 + timedelta(days=2))
    assert [v for _, v in series] == [102.0, 103.0, 104.0]
    assert h.series("other", "/:used_bytes") == []
    assert h.get_state("web", "c", "k", "dflt") == "dflt"
    h.set_state("web", "c", "k", {"seen": ["KB1"]})
    h.set_state("web", "c", "k", {"seen": ["KB1", "KB2"]})
    assert History(tmp_path / "h.db").get_state("web", "c", "k") == {"seen": ["KB1", "KB2"]}
    run.finished = T0 + timedelta(days=5)
    run.results = h.results(run_id="r1", limit=100)
    h.finish_run(run)
    stored = History(tmp_path / "h.db").get_run("r1")
    assert stored is not None and stored.finished == run.finished
    assert len(stored.results) == 5 and stored.results[0].metrics == {"/:used_bytes": 100.0}
    assert h.last_run_id() == "r1" and h.runs()[0]["status"] == "OK"


def test_unusable_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HistoryError, match="cannot open the history database"):
        History(blocker / "state" / "h.db")
