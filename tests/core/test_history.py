"""The history database: results with metrics, series, state, runs, and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

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


# Damaged, full and read-only databases: real files, a real small tmpfs (in a private
# user+mount namespace, so nothing on this machine changes) and overwritten pages.

UNSHARE = shutil.which("unshare")


def _unshare_works() -> bool:
    if UNSHARE is None:
        return False
    return subprocess.run([UNSHARE, "-rm", "true"], capture_output=True).returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_works(),
                                   reason="needs unshare -rm (user+mount namespaces)")


def in_small_tmpfs(tmp_path: Path, script: str, size: str = "600k") -> str:
    """Run ``script`` (sh) with $D a fresh tmpfs of ``size`` in a private namespace."""
    d = tmp_path / "small"
    d.mkdir()
    wrapper = f'mount -t tmpfs -o size={size} tmpfs "$D" && {script}'
    proc = subprocess.run([UNSHARE, "-rm", "sh", "-ec", wrapper], capture_output=True,
                          text=True, env={**os.environ, "D": str(d), "PY": sys.executable},
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


STORE_ON_FULL_DISK = r"""
import json, os, sqlite3, sys
from upkeeper.models import Result, RunRecord, Status
from upkeeper.store.history import History
d = os.environ["D"]
h = History(os.path.join(d, "h.db"))
h.start_run(RunRecord("ok", "play"))
# Fill the file system to the last byte.
fd = os.open(os.path.join(d, "fill"), os.O_WRONLY | os.O_CREAT)
for chunk in (65536, 4096, 1):
    try:
        while True:
            os.write(fd, b"x" * chunk)
    except OSError:
        pass
os.close(fd)
run = RunRecord("full", "play")
h.start_run(run)
for i in range(60):
    r = Result(Status.OK, "big " * 2000, host=f"h{i}", check="c")
    run.results.append(r)
    h.add_result("full", r)
h.finish_run(run)
out = {"note": run.meta.get("history_error"), "status": run.status.value,
       "last": run.results[-1].summary}
os.remove(os.path.join(d, "fill"))
# The failed COMMITs were rolled back: the next run is stored normally.
nxt = RunRecord("after", "play")
h.start_run(nxt)
h.add_result("after", Result(Status.OK, "fine", host="h", check="c"))
h.finish_run(nxt)
out["after"] = [r.summary for r in h.results(run_id="after")]
out["after_note"] = nxt.meta.get("history_error")
out["stored_full"] = len(h.results(run_id="full"))
print(json.dumps(out))
"""


@needs_unshare
def test_full_disk_rolls_back_and_the_run_says_it_was_not_stored(tmp_path):
    script = tmp_path / "full.py"
    script.write_text(STORE_ON_FULL_DISK)
    out = json.loads(in_small_tmpfs(tmp_path, f'"$PY" {script}'))
    assert out["status"] == "UNKNOWN"
    assert "not stored in history" in out["note"] and "disk is full" in out["note"]
    assert out["last"] == out["note"]
    assert out["after"] == ["fine"] and out["after_note"] is None


def test_commit_failure_rolls_back(tmp_path):
    """A COMMIT that fails must not leave the transaction open (the next BEGIN would
    fail with 'cannot start a transaction within a transaction')."""
    h = History(tmp_path / "h.db")
    h.query("PRAGMA foreign_keys=ON")
    h._db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    h._db.execute("CREATE TABLE child (p INTEGER REFERENCES parent(id)"
                  " DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(HistoryError, match="FOREIGN KEY"):
        with h.transaction() as db:
            db.execute("INSERT INTO child VALUES (42)")  # fails only at COMMIT
    assert not h._db.in_transaction
    h.start_run(RunRecord("r1", "play", started=T0))
    assert h.last_run_id() == "r1"


def _damage(path: Path, pages: range, page_size: int = 4096) -> None:
    with open(path, "r+b") as f:
        for p in pages:
            f.seek(p * page_size)
            f.write(bytes([0xA5]) * page_size)


def _big_history(path: Path) -> None:
    h = History(path)
    h.start_run(RunRecord("r1", "play", started=T0))
    for i in range(400):
        h.add_result("r1", Result(Status.OK, f"summary {i} " * 20, metrics={"m": i},
                                  host=f"h{i}", check="c", started=T0))
    h._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    h.close()


def test_overwritten_pages_are_one_clear_error_and_check_finds_them(tmp_path):
    from upkeeper.store.history import HistoryDamaged
    from upkeeper.store.integrity import check_database

    db = tmp_path / "history.sqlite3"
    _big_history(db)
    assert check_database(db) == []
    _damage(db, range(3, 12))
    problems = check_database(db)
    assert problems and all(isinstance(p, str) for p in problems)
    h = History(db)
    with pytest.raises(HistoryDamaged, match=r"is damaged \(.*'upkeeper history check'"):
        h.results(limit=1000)
    # A run on it goes on and says its results were not stored.
    run = RunRecord("r2", "play")
    h.start_run(run)
    for i in range(50):
        res = Result(Status.OK, "x" * 500, host=f"h{i}", check="c")
        run.results.append(res)
        h.add_result("r2", res)
    h.finish_run(run)
    assert run.status == Status.UNKNOWN and "not stored" in run.meta["history_error"]


def test_read_only_command_creates_nothing(tmp_path):
    from upkeeper.store.history import HistoryMissing

    with pytest.raises(HistoryMissing, match="nothing has run with this state dir"):
        History(tmp_path / "nope" / "history.sqlite3", create=False)
    assert not (tmp_path / "nope").exists()


@needs_unshare
def test_run_with_a_read_only_state_dir_prints_and_says_not_stored(tmp_path):
    pb = tmp_path / "pb.yml"
    pb.write_text("name: ro\nchecks:\n  - {check: system.command, params: {command: 'echo"
                  " hi'}}\n")
    out = in_small_tmpfs(tmp_path, f'''
"$PY" -m upkeeper run {pb} --state-dir "$D" > /dev/null 2>&1
mount -o remount,ro "$D"
set +e
"$PY" -m upkeeper run {pb} --state-dir "$D" 2> "$D/../ro.err"
echo "exit=$?"
''')
    lines = out.splitlines()
    assert lines[0].startswith("UNKNOWN: 1 OK, 1 UNKNOWN - run ")
    assert lines[0].endswith(" - results not stored")
    assert lines[1].startswith("OK ") and "hi" in lines[1]
    assert "read-only" in lines[2] and lines[-1] == "exit=3"
    err = (tmp_path / "ro.err").read_text()
    assert "Traceback" not in err and len([x for x in err.splitlines() if "ERROR" in x]) == 1


def test_a_new_history_is_private_to_its_owner(tmp_path: Path) -> None:
    """It holds the dashboard's password hashes and every client's hosts and problems:
    a new state dir and database (with its WAL files) are not readable by other local
    accounts, whatever the umask."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        history = History(tmp_path / "state" / "history.sqlite3")
        history.set_state("h", "c", "k", 1)
    finally:
        os.umask(old)
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "state").iterdir()}
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert mode["history.sqlite3"] == 0o600 and all(m == 0o600 for m in mode.values()), mode
    history.close()
