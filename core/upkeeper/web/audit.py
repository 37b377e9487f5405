"""Recording the dashboard's actions in the audit trail (stand-in until the
remediation audit log lands: one row per action, in this module's table)."""

from __future__ import annotations

import json
import time
from typing import Any

from upkeeper.store.history import History

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    data TEXT NOT NULL
)
"""


def record(history: History, *, actor: str, action: str, data: dict[str, Any]) -> None:
    with history.transaction() as db:
        db.execute(SCHEMA)
        db.execute("INSERT INTO web_audit (at, actor, action, data) VALUES (?,?,?,?)",
                   (time.time(), actor, action, json.dumps(data, default=str)))


def entries(history: History, limit: int = 50) -> list[dict[str, Any]]:
    with history.transaction() as db:
        db.execute(SCHEMA)
    rows = history.query("SELECT * FROM web_audit ORDER BY id DESC LIMIT ?", (limit,))
    return [{"at": r["at"], "actor": r["actor"], "action": r["action"],
             "data": json.loads(r["data"])} for r in rows]
