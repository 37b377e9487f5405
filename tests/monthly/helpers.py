"""Writing history for the monthly tests through the real History API (so the
``current`` table is maintained by the code under test, not by the test)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from upkeeper.after_run.clients import CLIENT_STATE
from upkeeper.models import Result, RunRecord, Status
from upkeeper.store.history import History

UTC = timezone.utc
_ids = itertools.count(1)


def at(text: str) -> datetime:
    """'2026-11-03 02:00' (UTC) -> aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def record(history: History, when: datetime, results: Iterable[tuple[str, str, Status]
           | tuple[str, str, Status, dict[str, float]]],
           *, playbook: str = "daily", meta: dict[str, Any] | None = None,
           summary: str = "", details: Any = None) -> str:
    """One run at ``when`` with (host, check, status[, metrics]) results."""
    run_id = f"r{next(_ids):06d}"
    run = RunRecord(run_id=run_id, playbook=playbook, started=when, meta=dict(meta or {}))
    history.start_run(run)
    for item in results:
        host, check, status = item[0], item[1], item[2]
        metrics = item[3] if len(item) > 3 else {}  # type: ignore[misc]
        res = Result(status, summary or f"{check} {status.value}", metrics=dict(metrics),
                     host=host, check=check, name=check, started=when, details=details)
        run.results.append(res)
        history.add_result(run_id, res)
    run.finished = when
    history.finish_run(run)
    return run_id


def clients(history: History, mapping: dict[str, str]) -> None:
    for host, client in mapping.items():
        history.set_state(host, CLIENT_STATE[0], CLIENT_STATE[1], client)
