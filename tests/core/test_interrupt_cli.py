"""Ctrl-C on a real ``upkeeper run``: one stored result per (host, check), whenever it lands."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

HOSTS = 40
CHECKS = 3


def count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0  # schema not created yet


@pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals")
@pytest.mark.slow
@pytest.mark.parametrize("after", [0, 1, 30, 80])
def test_sigint_stores_exactly_one_result_per_host_and_check(tmp_path: Path,
                                                             after: int) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n" + "".join(
        f"    h{i:02d}: {{ansible_connection: local}}\n" for i in range(HOSTS)))
    pb = tmp_path / "pb.yml"
    pb.write_text("name: many\nforks: 20\nchecks:\n" + "".join(
        f"  - name: c{n}\n    check: system.command\n"
        f"    params: {{command: 'sleep 0.3; echo ok', ok_regex: '^ok$'}}\n"
        for n in range(CHECKS)))
    state = tmp_path / "state"
    db = state / "history.sqlite3"
    proc = subprocess.Popen([sys.executable, "-m", "upkeeper", "--state-dir", str(state),
                             "run", str(pb), "-i", str(inv), "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    table = "runs" if after == 0 else "results"
    need = 1 if after == 0 else after
    while count(db, table) < need and proc.poll() is None:
        assert time.monotonic() < deadline, "the run did not get going"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 1, 2, 3), err.decode()[-2000:]
    con = sqlite3.connect(db)
    rows = con.execute("SELECT host, name, status, summary FROM results").fetchall()
    (interrupted,) = con.execute("SELECT interrupted FROM runs").fetchone()
    con.close()
    pairs = [(h, n) for h, n, _s, _m in rows]
    assert len(pairs) == len(set(pairs)), f"duplicates among {len(rows)} results"
    assert set(pairs) == {(f"h{i:02d}", f"c{n}") for i in range(HOSTS) for n in range(CHECKS)}
    if interrupted:
        # whatever ran into the stop is UNKNOWN, never a false CRIT from a killed command
        assert {s for _h, _n, s, _m in rows} <= {"OK", "UNKNOWN"}, rows
