"""The serve daemon on a fake clock: due runs, at-most-once slots across a crash, catch-up,
overlap, failures, reload and shutdown. Slow tests drive a real ``serve`` process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.core.servehelp import Serve, runs_by_slot, serving, write_playbook
from tests.waiting import wait_for
from upkeeper.models import Result, RunRecord, Status
from upkeeper.schedule.daemon import Daemon, JobDef, LoadResult, Slot
from upkeeper.schedule.specs import parse_spec
from upkeeper.store.history import History

__all__ = ["serving"]  # a fixture, used by name

UTC = timezone.utc
T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


class Recorder:
    """A run function: records calls, optionally blocks or raises."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, datetime]] = []
        self.block: threading.Event | None = None
        self.started = threading.Event()
        self.fail_next = False

    def __call__(self, job: JobDef, slot: Slot, stop: threading.Event) -> RunRecord:
        self.calls.append((job.key, slot.index, slot.due))
        self.started.set()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("plugin exploded")
        if self.block is not None:
            while not self.block.wait(0.01):
                if stop.is_set():
                    return RunRecord(run_id=slot.run_id, playbook=job.name, interrupted=True)
        rec = RunRecord(run_id=slot.run_id, playbook=job.name)
        rec.results.append(Result(Status.OK, "fine"))
        return rec


def job(key: str = "nightly.yml", **raw: Any) -> JobDef:
    raw.setdefault("timezone", "UTC")
    return JobDef(key=key, name=key.removesuffix(".yml"), specs=[parse_spec(raw, 0)])


class Loader:
    def __init__(self, *jobs: JobDef) -> None:
        self.result: LoadResult | None = LoadResult(jobs={j.key: j for j in jobs})

    def __call__(self) -> LoadResult:
        if self.result is None:
            raise OSError("playbooks directory vanished")
        return self.result


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


@pytest.fixture
def make(db: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def factory(loader: Loader, run: Recorder, clock: FakeClock, **kw: Any) -> Daemon:
        kw.setdefault("grace", 2.0)
        d = Daemon(History(db), loader, run, clock=clock, **kw)
        d.start()
        made.append(d)
        return d

    yield factory
    for d in made:
        if not d.stopping:
            d.shutdown()


def slots(db: Path) -> list[dict[str, Any]]:
    h = History(db)
    rows = [dict(r) for r in h.query("SELECT * FROM schedule_slots ORDER BY due, job")]
    h.close()
    for r in rows:
        r["due"] = datetime.fromtimestamp(r["due"], tz=UTC)
    return rows


def states(db: Path) -> list[tuple[str, str]]:
    return [(r["due"].strftime("%H:%M:%S"), r["state"]) for r in slots(db)]


def test_job_runs_when_due_and_slot_is_recorded(make: Callable[..., Daemon], db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    d = make(Loader(job(every="10 minutes")), run, clock)
    d.tick()
    assert run.calls == []
    clock.advance(minutes=9, seconds=59)
    d.tick()
    assert run.calls == []
    clock.advance(seconds=1)
    d.tick()
    assert d.wait_idle()
    assert run.calls == [("nightly.yml", 0, T0 + timedelta(minutes=10))]
    (row,) = slots(db)
    assert (row["state"], row["status"], row["reason"]) == ("done", "OK", "OK=1")
    clock.advance(minutes=10)
    d.tick()
    assert d.wait_idle()
    assert len(run.calls) == 2
    # Jobs live on the daemon's own schedule.Scheduler, never the module-level default.
    import schedule

    assert isinstance(d.sched, schedule.Scheduler) and schedule.get_jobs() == []


def test_jittered_job_starts_within_its_jitter(make: Callable[..., Daemon]) -> None:
    clock, run = FakeClock(), Recorder()
    d = make(Loader(job(every="hour", jitter="10m")), run, clock)
    (sj,) = d.sched.jobs
    due = T0 + timedelta(hours=1)
    planned = sj.next_run
    assert due < planned < due + timedelta(minutes=10)
    clock.now = planned - timedelta(seconds=1)
    d.tick()
    assert run.calls == []
    clock.now = planned
    d.tick()
    assert d.wait_idle()
    assert [c[2] for c in run.calls] == [due]


def test_slot_runs_at_most_once_across_a_crash(make: Callable[..., Daemon], db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    run.block = threading.Event()
    loader = Loader(job(every="10 minutes"))
    first = make(loader, run, clock)
    clock.advance(minutes=10)
    first.tick()
    assert run.started.wait(5)
    # "Crash": the first daemon is abandoned mid-run; a second starts on the same DB.
    second = make(loader, Recorder(), clock)
    second.tick()
    clock.advance(seconds=30)
    second.tick()
    assert second.run_fn.calls == []  # type: ignore[attr-defined]
    (row,) = slots(db)
    assert row["state"] == "interrupted"
    assert "killed or crashed" in row["reason"]
    clock.advance(minutes=10)
    second.tick()
    assert second.wait_idle()
    assert [s for s in states(db)] == [("12:10:00", "interrupted"), ("12:20:00", "done")]
    run.block.set()
    first.wait_idle()


def test_two_live_daemons_never_both_claim_a_slot(make: Callable[..., Daemon],
                                                  db: Path) -> None:
    clock = FakeClock()
    runs = [Recorder(), Recorder()]
    loader = Loader(job(every="1 minutes"))
    daemons = [make(loader, r, clock) for r in runs]
    for _ in range(5):
        clock.advance(minutes=1)
        for d in daemons:
            d.tick()
        for d in daemons:
            d.wait_idle()
    dues = [c[2] for r in runs for c in r.calls]
    assert len(dues) == 5 and len(set(dues)) == 5
    assert [s for _t, s in states(db)] == ["done"] * 5


def test_catch_up_runs_the_newest_missed_slot_once(make: Callable[..., Daemon],
                                                   db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    loader = Loader(job(every="10 minutes"))
    d = make(loader, run, clock)
    clock.advance(minutes=10)
    d.tick()
    d.wait_idle()
    d.shutdown()
    clock.advance(minutes=25)  # down over 12:20 and 12:30
    d2 = make(loader, run, clock)
    d2.tick()
    assert d2.wait_idle()
    assert [c[2].strftime("%H:%M") for c in run.calls] == ["12:10", "12:30"]
    assert states(db) == [("12:10:00", "done"), ("12:20:00", "missed"), ("12:30:00", "done")]
    rows = slots(db)
    assert "daemon was not running; superseded" in rows[1]["reason"]
    assert rows[2]["reason"].startswith("caught up 300s late (due while the daemon was down)")
    assert rows[2]["reason"].endswith("; OK=1")


def test_missed_slots_beyond_catch_up_are_recorded_not_run(make: Callable[..., Daemon],
                                                           db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    loader = Loader(job(every="30 minutes"))
    make(loader, run, clock).shutdown()
    clock.advance(hours=2, minutes=15)  # 12:30 .. 14:00 missed
    d = make(loader, run, clock, catch_up=600)
    d.tick()
    d.wait_idle()
    assert run.calls == []
    assert [s for _t, s in states(db)] == ["missed"] * 4
    assert "beyond catch_up 600s" in slots(db)[-1]["reason"]
    # Afterwards the schedule carries on normally.
    clock.advance(minutes=15)
    d.tick()
    assert d.wait_idle() and len(run.calls) == 1


def test_catch_up_zero_disables(make: Callable[..., Daemon], db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    loader = Loader(job(every="10 minutes"))
    make(loader, run, clock).shutdown()
    clock.advance(minutes=11)
    d = make(loader, run, clock, catch_up=0)
    d.tick()
    d.wait_idle()
    assert run.calls == [] and states(db) == [("12:10:00", "missed")]


def test_per_schedule_catch_up_overrides_the_daemon_default(make: Callable[..., Daemon],
                                                           db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    strict = Loader(job(every="10 minutes", catch_up="1m"))
    make(strict, run, clock).shutdown()
    clock.advance(minutes=15)
    d = make(strict, run, clock)
    d.tick()
    d.wait_idle()
    assert run.calls == [] and states(db) == [("12:10:00", "missed")]
    assert "beyond catch_up 60s" in slots(db)[0]["reason"]


def test_a_stalled_daemon_runs_the_newest_slot_and_records_the_rest(
        make: Callable[..., Daemon], db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    d = make(Loader(job(every="1 minutes")), run, clock)
    clock.advance(minutes=5, seconds=10)  # e.g. the machine was suspended
    d.tick()
    assert d.wait_idle()
    assert [c[2].strftime("%H:%M") for c in run.calls] == ["12:05"]
    rows = slots(db)
    assert [r["state"] for r in rows] == ["missed"] * 4 + ["done"]
    assert all(r["reason"].startswith("daemon fell behind; superseded by the slot due")
               for r in rows[:4])


def test_long_outage_of_a_fast_schedule_is_counted(make: Callable[..., Daemon],
                                                   db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    loader = Loader(job(every="1 seconds"))
    make(loader, run, clock, catch_up=0).shutdown()
    clock.advance(days=1, seconds=0.5)
    d = make(loader, run, clock, catch_up=0)
    d.tick()
    rows = slots(db)
    assert sum(r["count"] for r in rows) == 86400
    assert len(rows) <= 1002 and run.calls == []


def test_new_schedule_does_not_catch_up_its_past(make: Callable[..., Daemon]) -> None:
    clock, run = FakeClock(), Recorder()
    d = make(Loader(job(every="day", at="02:00")), run, clock)
    d.tick()
    assert run.calls == []
    assert d.sched.jobs[0].next_run == datetime(2026, 11, 27, 2, tzinfo=UTC)


def test_overlapping_run_is_skipped_and_recorded(make: Callable[..., Daemon],
                                                 db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    run.block = threading.Event()
    d = make(Loader(job(every="1 minutes")), run, clock)
    clock.advance(minutes=1)
    d.tick()
    assert run.started.wait(5)
    clock.advance(minutes=1)
    d.tick()
    run.block.set()
    assert d.wait_idle()
    clock.advance(minutes=1)
    d.tick()
    assert d.wait_idle()
    assert states(db) == [("12:01:00", "done"), ("12:02:00", "skipped"), ("12:03:00", "done")]
    assert "still going" in slots(db)[1]["reason"]
    assert len(run.calls) == 2


def test_other_jobs_are_not_delayed_by_a_long_run(make: Callable[..., Daemon]) -> None:
    clock = FakeClock()
    slow, fast = Recorder(), Recorder()
    slow.block = threading.Event()

    def run(j: JobDef, slot: Slot, stop: threading.Event) -> RunRecord:
        return (slow if j.key == "slow.yml" else fast)(j, slot, stop)

    d = make(Loader(job("slow.yml", every="1 minutes"), job("fast.yml", every="1 minutes")),
             run, clock)
    for i in range(3):
        clock.advance(minutes=1)
        d.tick()
        for _ in range(500):
            if len(fast.calls) == i + 1 and not any(s.job == "fast.yml" for s in d.running()):
                break
            threading.Event().wait(0.01)
    slow.block.set()
    d.wait_idle()
    assert len(fast.calls) == 3 and len(slow.calls) == 1


def test_exception_is_recorded_and_daemon_goes_on(make: Callable[..., Daemon],
                                                  db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    run.fail_next = True
    d = make(Loader(job(every="1 minutes")), run, clock)
    clock.advance(minutes=1)
    d.tick()
    assert d.wait_idle()
    clock.advance(minutes=1)
    d.tick()
    assert d.wait_idle()
    rows = slots(db)
    assert [r["state"] for r in rows] == ["failed", "done"]
    assert rows[0]["reason"] == "RuntimeError: plugin exploded"
    assert "plugin exploded" in (d.last_error or "")


def test_database_error_while_scheduling_is_retried(db: Path) -> None:
    import sqlite3
    from contextlib import AbstractContextManager

    class FlakyHistory(History):
        failures = 0

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
            if self.failures:
                self.failures -= 1
                raise sqlite3.OperationalError("database is locked")
            return super().transaction()

    clock, run = FakeClock(), Recorder()
    history = FlakyHistory(db)
    d = Daemon(history, Loader(job(every="1 minutes")), run, clock=clock)
    d.start()
    clock.advance(minutes=1)
    history.failures = 1
    d.tick()
    assert run.calls == [] and "database is locked" in (d.last_error or "")
    clock.advance(seconds=5)
    d.tick()
    assert d.wait_idle()
    assert [c[2] for c in run.calls] == [T0 + timedelta(minutes=1)]
    assert states(db) == [("12:01:00", "done")]
    d.shutdown()


def test_reload_keeps_the_old_version_of_a_broken_file(make: Callable[..., Daemon]) -> None:
    clock, run = FakeClock(), Recorder()
    loader = Loader(job("a.yml", every="1 minutes"))
    d = make(loader, run, clock)
    loader.result = LoadResult(jobs={"b.yml": job("b.yml", every="1 minutes")},
                               errors={"a.yml": "a.yml:3:3: broken"})
    d.request_reload()
    d.tick()
    assert sorted(d.jobs) == ["a.yml", "b.yml"]
    clock.advance(minutes=1)
    d.tick()
    assert d.wait_idle()
    assert sorted(c[0] for c in run.calls) == ["a.yml", "b.yml"]
    assert d.last_error == "a.yml:3:3: broken"
    # A loader that blows up keeps everything.
    loader.result = None
    d.reload()
    assert sorted(d.jobs) == ["a.yml", "b.yml"]
    # A file removed for good is dropped.
    loader.result = LoadResult(jobs={"b.yml": job("b.yml", every="1 minutes")})
    d.reload()
    assert sorted(d.jobs) == ["b.yml"]


def test_reload_with_unchanged_schedule_keeps_its_position(make: Callable[..., Daemon],
                                                           db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    loader = Loader(job(every="10 minutes"))
    d = make(loader, run, clock)
    clock.advance(minutes=10, seconds=5)
    d.reload()  # reload exactly when a slot is due: it must neither vanish nor double
    d.tick()
    d.reload()
    d.tick()
    assert d.wait_idle()
    assert states(db) == [("12:10:00", "done")]


def test_shutdown_interrupts_what_outlives_the_grace(make: Callable[..., Daemon],
                                                     db: Path) -> None:
    clock, run = FakeClock(), Recorder()
    run.block = threading.Event()
    d = make(Loader(job(every="1 minutes")), run, clock, grace=0.3)
    clock.advance(minutes=1)
    d.tick()
    assert run.started.wait(5)
    d.request_stop("SIGTERM")
    d.shutdown()
    (row,) = slots(db)
    assert row["state"] == "interrupted"
    assert "grace period" in row["reason"]
    h = History(db)
    (daemon,) = h.query("SELECT stopped, stop_reason FROM schedule_daemons")
    assert daemon["stop_reason"] == "SIGTERM" and daemon["stopped"] is not None


def test_second_daemon_on_the_same_lock_is_refused(make: Callable[..., Daemon],
                                                   tmp_path: Path) -> None:
    clock = FakeClock()
    lock = tmp_path / "serve.lock"
    make(Loader(), Recorder(), clock, lock_path=lock)
    with pytest.raises(RuntimeError, match="another upkeeper serve"):
        make(Loader(), Recorder(), clock, lock_path=lock)


def test_status_reports_dead_daemon_and_problems(make: Callable[..., Daemon], db: Path) -> None:
    from upkeeper.cli.status import collect_status

    clock, run = FakeClock(), Recorder()
    run.fail_next = True
    d = make(Loader(job(every="1 minutes")), run, clock, heartbeat_interval=10)
    clock.advance(minutes=1)
    d.tick()
    d.wait_idle()
    d.heartbeat(force=True)
    h = History(db)
    report = collect_status(h, clock.now + timedelta(seconds=5), T0)
    assert report["daemon"]["state"] == "running"
    assert [p["state"] for p in report["problems"]] == ["failed"]
    assert report["jobs"][0]["next_run"] == (T0 + timedelta(minutes=2)).isoformat()
    # No heartbeat for an hour, no clean stop, and its process (this one) still runs:
    # stalled (hung), which is as bad as dead for the exit code.
    report = collect_status(h, clock.now + timedelta(hours=1), T0)
    assert report["daemon"]["state"] == "stalled"
    assert "runs but has recorded no heartbeat" in report["daemon"]["why"]


# Real processes: `serve` as a subprocess against the local inventory.

@pytest.mark.slow
def test_serve_end_to_end_runs_land_in_history(tmp_path: Path,
                                               serving: Callable[..., Serve]) -> None:
    pbs = tmp_path / "pb"
    write_playbook(pbs, "fast")
    (pbs / "adhoc.yml").write_text("name: adhoc\nchecks: [system.uptime]\n")
    s = serving(pbs, "--max-runtime", "6s")
    assert s.wait() == 0, s.text()
    done = [r for r in s.slots() if r["state"] == "done"]
    assert len(done) >= 2, s.text()
    assert all(r["job"] == "fast.yml" and r["status"] == "OK" for r in done)
    h = History(s.state / "history.sqlite3")
    for r in done:
        (res,) = h.results(run_id=r["run_id"])
        assert res.status == Status.OK and res.host == "localhost"
    assert max(runs_by_slot(s.state).values()) == 1


@pytest.mark.slow
def test_sigterm_lets_the_running_job_finish(tmp_path: Path,
                                             serving: Callable[..., Serve]) -> None:
    import signal

    pbs = tmp_path / "pb"
    write_playbook(pbs, "nap", command="sleep 2; echo ok")
    s = serving(pbs, "--grace", "20s")
    s.until(lambda rows: any(r["state"] == "running" for r in rows))
    s.signal(signal.SIGTERM)
    assert s.wait() == 0, s.text()
    rows = s.slots()
    assert [r["state"] for r in rows if r["state"] not in ("skipped", "missed")] == ["done"]
    assert "stopping (SIGTERM)" in s.text()
    h = History(s.state / "history.sqlite3")
    (d,) = h.query("SELECT stop_reason FROM schedule_daemons")
    assert d["stop_reason"] == "SIGTERM"


@pytest.mark.slow
def test_sigterm_interrupts_after_the_grace_period(tmp_path: Path,
                                                   serving: Callable[..., Serve]) -> None:
    import signal

    pbs = tmp_path / "pb"
    write_playbook(pbs, "stuck", command="sleep 300")
    s = serving(pbs, "--grace", "1s")
    s.until(lambda rows: any(r["state"] == "running" for r in rows))
    s.signal(signal.SIGTERM)
    assert s.wait() == 0, s.text()  # within wait()'s 30 s: the 300 s command was not waited for
    (row,) = [r for r in s.slots() if r["state"] not in ("skipped", "missed")]
    assert row["state"] == "interrupted" and "grace period" in row["reason"]
    h = History(s.state / "history.sqlite3")
    (run,) = h.query("SELECT interrupted FROM runs WHERE id=?", (row["run_id"],))
    assert run["interrupted"] == 1


def _has_run(db: Path, run_id: str) -> bool:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is not None
    finally:
        con.close()


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_runs_nothing_twice_and_loses_nothing(
        tmp_path: Path, serving: Callable[..., Serve]) -> None:
    import signal
    import time

    pbs = tmp_path / "pb"
    write_playbook(pbs, "nap", every="2 seconds", command="sleep 1; echo ok")
    first = serving(pbs)
    first.until(lambda rows: any(r["state"] == "done" for r in rows)
                and rows[-1]["state"] == "running")
    killed_run = first.slots()[-1]["run_id"]
    # The slot says "running" a moment before the run's row is written: kill after both.
    wait_for(lambda: _has_run(first.state / "history.sqlite3", killed_run),
             "the running slot's run to be recorded", interval=0.02)
    first.signal(signal.SIGKILL)
    first.wait()
    down_at = time.time()
    due = first.slots()[-1]["due"]  # the killed run's slot; one comes due every 2 seconds
    while due <= down_at:
        due += 2
    wait_for(lambda: time.time() > due + 0.1, "a slot to come due while nothing runs",
             interval=0.05)
    second = serving(pbs)
    second.until(lambda rows: sum(r["due"] > down_at and r["state"] == "done"
                                  for r in rows) >= 2)
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.text()

    rows = second.slots()
    by_run = {r["run_id"]: r for r in rows if r["run_id"]}
    killed = by_run[killed_run]
    assert killed["state"] == "interrupted" and "killed or crashed" in killed["reason"]
    # Nothing ran twice: one history run per slot, one slot row per (job, due).
    per_slot = runs_by_slot(second.state)
    assert per_slot and max(per_slot.values()) == 1
    # Nothing lost: every finished slot has its run and result in history.
    h = History(second.state / "history.sqlite3")
    for r in rows:
        if r["state"] == "done":
            assert len(h.results(run_id=r["run_id"])) == 1
    (run,) = h.query("SELECT interrupted FROM runs WHERE id=?", (killed_run,))
    assert run["interrupted"] == 1
    # Slots due while down: the newest was caught up, older ones recorded as missed.
    daemons = h.query("SELECT started, stop_reason FROM schedule_daemons ORDER BY started")
    assert [d["stop_reason"] for d in daemons] == ["no clean shutdown (killed or crashed)",
                                                   "SIGTERM"]
    restarted = daemons[1]["started"]
    while_down = [r for r in rows if down_at < r["due"] < restarted]
    assert while_down, rows
    newest = while_down[-1]
    # Caught up, unless (slow start) a slot due after the restart superseded it.
    assert (newest["state"] == "done" and newest["reason"].startswith("caught up")) or (
        newest["state"] == "missed" and "superseded by the slot due" in newest["reason"]
    ), newest
    assert all(r["state"] == "missed" for r in while_down[:-1])


@pytest.mark.slow
def test_sighup_reload_keeps_a_broken_playbook_and_adds_new_ones(
        tmp_path: Path, serving: Callable[..., Serve]) -> None:
    import signal
    import time

    pbs = tmp_path / "pb"
    a = write_playbook(pbs, "a")
    s = serving(pbs)
    s.until(lambda rows: any(r["job"] == "a.yml" and r["state"] == "done" for r in rows))
    a.write_text("name: a\nschedule:\n  every: fortnight\nchecks: [system.uptime]\n")
    write_playbook(pbs, "b")
    reloaded = time.time()
    s.signal(signal.SIGHUP)
    s.until(lambda rows: any(r["job"] == "b.yml" and r["state"] == "done" for r in rows)
            and any(r["job"] == "a.yml" and r["due"] > reloaded + 1 and r["state"] == "done"
                    for r in rows))
    s.signal(signal.SIGTERM)
    assert s.wait() == 0
    log = s.text()
    assert f"{a}:3:3: schedule: every 'fortnight'" in log
    assert "a.yml: keeping the previously loaded version" in log
    assert "reloaded: 2 scheduled playbook(s)" in log


@pytest.mark.slow
def test_second_serve_on_the_same_state_dir_is_refused(tmp_path: Path,
                                                       serving: Callable[..., Serve]) -> None:
    pbs = tmp_path / "pb"
    write_playbook(pbs, "a", every="1 hours")
    first = serving(pbs)
    first.until(lambda _rows: (first.state / "serve-health.json").exists())
    second = serving(pbs)
    assert second.wait() == 3
    assert "another upkeeper serve" in second.text()


def test_status_command_exit_codes_and_slot_list(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from upkeeper.cli.serve import main

    state = tmp_path / "state"
    runner = CliRunner()
    res = runner.invoke(main, ["status", "--state-dir", str(state)])
    assert res.exit_code == 3 and "never started" in res.output
    clock, run = FakeClock(datetime.now(UTC)), Recorder()
    run.fail_next = True
    d = Daemon(History(state / "history.sqlite3"), Loader(job(every="1 minutes")), run,
               clock=clock)
    d.start()
    res = runner.invoke(main, ["status", "--state-dir", str(state)])
    assert res.exit_code == 0, res.output
    assert "serve: RUNNING" in res.output and "nightly.yml#0  every minute" in res.output
    clock.advance(minutes=1)
    d.tick()
    d.wait_idle()
    res = runner.invoke(main, ["status", "--state-dir", str(state)])
    assert res.exit_code == 1
    assert "failed: nightly.yml#0" in res.output and "plugin exploded" in res.output
    d.request_stop("SIGTERM")
    d.shutdown()
    res = runner.invoke(main, ["status", "--state-dir", str(state), "--format", "json"])
    assert res.exit_code == 2
    assert '"stop_reason": "SIGTERM"' in res.output
    res = runner.invoke(main, ["status", "--state-dir", str(state), "--slots"])
    (line,) = res.output.splitlines()
    assert "nightly.yml#0  failed" in line and "RuntimeError: plugin exploded" in line


def test_windows_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from upkeeper.cli.serve import main

    inv = tmp_path / "inv.yml"
    inv.write_text("""\
all:
  hosts:
    web1:
      maintenance_windows: ["daily 01:00-02:00", "Sat 22:00-Sun 04:00"]
      timezone: Europe/London
    db1:
      maintenance_windows: sometimes
    plain1: {}
""")
    res = CliRunner().invoke(main, ["windows", "-i", str(inv), "-n", "2"])
    assert res.exit_code == 3
    lines = res.output.splitlines()
    assert lines[0].startswith("web1 (Europe/London): ")
    assert len([x for x in lines if x.startswith("  ")]) == 2
    assert any(x.startswith("db1: ERROR maintenance window 'sometimes'") for x in lines)
    assert not any("plain1" in x for x in lines)
    res = CliRunner().invoke(main, ["windows", "-i", str(inv), "-l", "plain1", "--all",
                                    "--format", "json"])
    assert res.exit_code == 0
    assert '"reason": "no maintenance windows defined"' in res.output


def test_json_log_lines() -> None:
    import json
    import logging

    from upkeeper.cli.serve import JsonFormatter

    rec = logging.LogRecord("upkeeper.serve", logging.WARNING, __file__, 1,
                            "slot %s missed", ("x",), None)
    out = json.loads(JsonFormatter().format(rec))
    assert out["level"] == "warning" and out["msg"] == "slot x missed"
    assert out["logger"] == "upkeeper.serve" and out["ts"].endswith("+00:00")


def test_playbook_dir_serves_only_scheduled_playbooks(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from upkeeper.checks import Check, Params
    from upkeeper.cli.serve import PlaybookDir

    class CommandParams(Params):
        command: str = ""

    class AnyCheck(Check[CommandParams]):
        Params = CommandParams

    registry = SimpleNamespace(check=lambda name: AnyCheck, inventory_sources=[])
    pbs = tmp_path / "pb"
    write_playbook(pbs, "served", every="1 hours")
    (pbs / "adhoc.yml").write_text("name: adhoc\nchecks: [system.uptime]\n")
    (pbs / "group_vars").mkdir()
    (pbs / "group_vars" / "all.yml").write_text("timezone: Europe/London\n")
    (pbs / "nested").mkdir()
    write_playbook(pbs / "nested", "deep", every="day")
    (pbs / "broken.yml").write_text("name: b\nschedule: {every: day, at: noon}\nchecks: [x]\n")
    loaded = PlaybookDir(pbs, (), lambda: SimpleNamespace(registry=registry))()
    assert sorted(loaded.jobs) == ["nested/deep.yml", "served.yml"]
    assert list(loaded.errors) == ["broken.yml"]
    assert loaded.errors["broken.yml"].startswith(f"{pbs / 'broken.yml'}:2:")
    assert loaded.jobs["served.yml"].specs[0].unit == "hours"


def test_serve_prunes_history_past_its_retention(make: Callable[..., Daemon], db: Path) -> None:
    """serve keeps history bounded by itself (default 400 days, ``--retention``)."""
    h = History(db)
    for run_id, age in (("ancient", 401), ("recent", 399)):
        started = T0 - timedelta(days=age)
        h.start_run(RunRecord(run_id, "p", started=started))
        h.add_result(run_id, Result(Status.OK, "x", metrics={"m": 1.0}, host="h", check="c",
                                    started=started))
    h.close()
    clock = FakeClock()
    d = make(Loader(job(every="1 hours")), Recorder(), clock, retention=400 * 86400.0)
    d.tick()
    assert d._pruning is not None
    d._pruning.join(30)
    h = History(db)
    assert [r["run_id"] for r in h.runs()] == ["recent"]
    assert h.query("SELECT COUNT(*) FROM metrics")[0][0] == 1
    h.close()
