"""A small fleet's history for the dashboard tests: two clients (acme, globex), a few
days of runs with metrics, a host with a problem, and a run left running."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from upkeeper.after_run.clients import CLIENT_STATE
from upkeeper.models import Result, RunRecord, Status
from upkeeper.store.history import History

NOW = datetime.now(timezone.utc).replace(microsecond=0)
HOSTS = {"web1": "acme", "db1": "acme", "mail1": "globex"}


def result(host: str, check: str, status: Status, summary: str, when: datetime,
           metrics: dict[str, float] | None = None, name: str = "") -> Result:
    return Result(status, summary, metrics=metrics or {}, details={"seen": summary},
                  host=host, check=check, name=name or check, started=when)


def fill(history: History, days: int = 10) -> None:
    """``days`` daily runs of a 'daily' playbook over every host."""
    for host, client in HOSTS.items():
        history.set_state(host, *CLIENT_STATE, client)
    for day in range(days, 0, -1):
        when = NOW - timedelta(days=day)
        run = RunRecord(f"run-{day:03d}", "daily", started=when,
                        meta={"clients": dict(HOSTS)})
        history.start_run(run)
        for i, host in enumerate(HOSTS):
            used = 35.0 + i * 15 + (days - day) * 0.8
            disk = Status.CRIT if host == "mail1" and day < 3 else Status.OK
            rs = [result(host, "disk.usage", disk, f"/ {used:.0f}% used", when,
                         {"/:used_pct": used, "/:days_to_full": 30.0 - day}),
                  result(host, "patching.status", Status.WARN if host == "db1" else Status.OK,
                         "2 security updates pending" if host == "db1" else "up to date",
                         when, {"pending_security": 2 if host == "db1" else 0,
                                "pending_total": 5}),
                  result(host, "backup.restic", Status.OK, "snapshot 3 h old", when,
                         {"age_hours": 3.0 + i})]
            for r in rs:
                run.results.append(r)
                history.add_result(run.run_id, r)
        run.finished = when + timedelta(minutes=2)
        history.finish_run(run)


def start_running(history: History, run_id: str = "run-live") -> RunRecord:
    """A run that has started and not finished (results are added by the test)."""
    run = RunRecord(run_id, "patch-now", started=NOW, meta={"clients": dict(HOSTS)})
    history.start_run(run)
    return run


def globex_only_run(history: History, run_id: str = "run-globex") -> None:
    """A run over globex's host alone."""
    run = RunRecord(run_id, "globex-backup", started=NOW - timedelta(hours=1),
                    meta={"clients": {"mail1": "globex"}})
    history.start_run(run)
    r = result("mail1", "backup.restic", Status.OK, "globex secret backup summary",
               NOW - timedelta(hours=1), {"age_hours": 1.0})
    run.results.append(r)
    history.add_result(run_id, r)
    run.finished = NOW - timedelta(minutes=50)
    history.finish_run(run)
