"""``upkeeper history`` / ``runs`` / ``history prune`` / ``history check`` / ``status``
on real database files: run ids, filters that list what is there, retention that gives
space back, damaged files as one line, and ``--state-dir`` after every subcommand."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from upkeeper.cli.main import main
from upkeeper.models import Result, RunRecord, Status
from upkeeper.store.history import History

NOW = datetime.now(timezone.utc)
OLD = NOW - timedelta(days=500)


def add_run(h: History, run_id: str, started: datetime, *, playbook: str = "nightly",
            path: str = "playbooks/nightly.yml", clients: dict[str, str] | None = None,
            results: int = 2, status: Status = Status.OK, size: int = 10) -> None:
    run = RunRecord(run_id, playbook, started=started)
    run.meta = {"playbook_path": path, "clients": clients or {}}
    h.start_run(run)
    for i in range(results):
        res = Result(status, f"result {i} " + "x" * size, metrics={"m": i, "n": 2 * i},
                     host=f"web{i}", check="disk.usage", started=started)
        run.results.append(res)
        h.add_result(run_id, res)
    run.finished = started + timedelta(minutes=1)
    h.finish_run(run)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    h = History(d / "history.sqlite3")
    add_run(h, "old-run", OLD, clients={"web0": "acme"}, results=300, size=2000)
    add_run(h, "new-run", NOW - timedelta(hours=1), clients={"web0": "acme", "web1": "zeta"})
    add_run(h, "other-run", NOW, playbook="weekly", path="playbooks/weekly.yml",
            status=Status.WARN)
    h.close()
    return d


def rows(out: str) -> list[list[str]]:
    """Tab-separated rows under their header line."""
    lines = out.splitlines()
    return [line.split("\t") for line in lines[1:]]


def cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    assert not isinstance(res.exception, Exception) or isinstance(res.exception,
                                                                   SystemExit), res.output
    return res.exit_code, res.stdout, res.stderr


def test_runs_lists_runs_as_tab_separated_rows(state: Path) -> None:
    code, out, _ = cli("runs", "--state-dir", str(state))
    assert code == 0
    assert out.splitlines()[0] == "Run\tPlaybook\tStarted\tStatus\tResults\tHosts"
    found = rows(out)
    assert [r[0] for r in found] == ["other-run", "new-run", "old-run"]
    assert found[0][1] == "weekly" and found[0][3] == "WARN" and found[0][4] == "WARN=2"
    assert found[2][5] == "300"  # hosts
    code, out, _ = cli("runs", "--state-dir", str(state), "--format", "json")
    data = json.loads(out)
    assert data[1]["run_id"] == "new-run" and data[1]["counts"] == {"OK": 2}


def test_history_shows_run_ids_and_filters(state: Path) -> None:
    code, out, _ = cli("history", "--state-dir", str(state), "-n", "3")
    assert code == 0
    found = rows(out)
    assert len(found) == 3 and {r[4] for r in found} <= {"other-run", "new-run"}
    # --playbook takes the name, the file as run, or its file name.
    for given in ("weekly", "playbooks/weekly.yml", "weekly.yml"):
        code, out, _ = cli("history", "--state-dir", str(state), "--playbook", given)
        assert code == 0 and {r[4] for r in rows(out)} == {
            "other-run"}
    code, out, _ = cli("history", "--state-dir", str(state), "--client", "zeta")
    assert code == 0 and {r[2] for r in rows(out)} == {"web1"}
    code, out, _ = cli("history", "--state-dir", str(state), "--run", "new-run",
                       "--format", "json")
    data = json.loads(out)
    assert {r["run_id"] for r in data} == {"new-run"} and data[0]["metrics"]


def test_unknown_filters_are_errors_that_list_what_exists(state: Path) -> None:
    code, _, err = cli("history", "--state-dir", str(state), "--run", "nope")
    assert code == 3 and "no run 'nope'" in err and "other-run" in err
    code, _, err = cli("runs", "--state-dir", str(state), "--playbook", "daily")
    assert code == 3 and "known playbooks: nightly, nightly.yml, weekly, weekly.yml" in err
    code, _, err = cli("history", "--state-dir", str(state), "--client", "umbrella")
    assert code == 3 and "clients present: acme, zeta" in err
    assert len(err.strip().splitlines()) == 1


def test_prune_deletes_old_history_and_gives_space_back(state: Path) -> None:
    db = state / "history.sqlite3"
    code, out, _ = cli("history", "prune", "--older-than", "400d", "--dry-run",
                       "--state-dir", str(state))
    assert code == 0 and "would have deleted 1 run(s), 300 result(s)" in out
    before = db.stat().st_size
    code, out, _ = cli("history", "prune", "--older-than", "400d", "--state-dir", str(state))
    assert code == 0, out
    assert "deleted 1 run(s), 300 result(s), 600 metric value(s)" in out
    h = History(db)
    assert [r["run_id"] for r in h.runs()] == ["other-run", "new-run"]
    assert h.query("SELECT COUNT(*) FROM metrics WHERE result_id NOT IN"
                   " (SELECT id FROM results)")[0][0] == 0
    assert h.query("PRAGMA freelist_count")[0][0] == 0
    h.close()
    assert db.stat().st_size < before / 2


def test_prune_reclaims_space_in_an_old_style_file(tmp_path: Path) -> None:
    """A database created before incremental vacuum (auto_vacuum=NONE) gets one VACUUM,
    which also switches it to incremental."""
    import sqlite3

    from upkeeper.store.retention import prune

    path = tmp_path / "history.sqlite3"
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").close()  # not empty: NONE
    h = History(path)
    assert h.query("PRAGMA auto_vacuum")[0][0] == 0
    add_run(h, "old", OLD, results=600, size=4000)
    add_run(h, "new", NOW)
    rep = prune(h, NOW - timedelta(days=400))
    assert rep.results == 600 and rep.runs == 1 and "VACUUM" in rep.reclaimed
    assert rep.bytes_after < rep.bytes_before / 4
    assert h.query("PRAGMA auto_vacuum")[0][0] == 2
    assert [r["run_id"] for r in h.runs()] == ["new"]


def test_history_check_and_damaged_file(state: Path) -> None:
    db = state / "history.sqlite3"
    code, out, _ = cli("history", "check", "--state-dir", str(state))
    assert code == 0 and out.strip().endswith("OK (quick_check)")
    History(db)._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as f:
        for page in range(2, 40):
            f.seek(page * 4096)
            f.write(b"\xa5" * 4096)
    code, out, _ = cli("history", "check", "--state-dir", str(state))
    assert code == 2 and "DAMAGED" in out and "A damaged history database" in out
    code, out, err = cli("history", "--state-dir", str(state), "-n", "1000")
    assert code == 3 and out == ""
    assert err.startswith("upkeeper: error: the history database") and "damaged" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_state_dir_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    code, out, _ = cli("status", "--state-dir", str(missing))
    assert code == 3 and f"never started with this state dir: {missing} does not exist" in out
    for args in (("history",), ("runs",), ("history", "check")):
        code, _, err = cli(*args, "--state-dir", str(missing))
        assert code == 3 and "no history database" in err, args
    assert not missing.exists()


def test_state_dir_is_accepted_after_every_subcommand(tmp_path: Path, state: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("name: t\nchecks:\n  - {check: system.command, params: {command: 'echo"
                  " hi'}}\n")
    fresh = tmp_path / "fresh"
    code, out, _ = cli("run", str(pb), "--state-dir", str(fresh))
    assert code == 0, out
    assert (fresh / "history.sqlite3").is_file()
    code, out, _ = cli("runs", "--state-dir", str(fresh))
    assert code == 0 and len(rows(out)) == 1
    # Before the subcommand still works too.
    code, out, _ = cli("--state-dir", str(state), "runs", "-n", "1")
    assert code == 0 and rows(out)[0][0] == "other-run"
    code, _, _ = cli("validate", str(pb), "--state-dir", str(fresh))
    assert code == 0
