"""Every delivery attempt kept in history, so broken alerting is not silent: ``upkeeper
status`` warns while a channel's last delivery failed.

Rows hold the channel, where it sent (recipients or scheme://host, never a URL's path),
when, whether it worked and the error, all with secrets masked before they get here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upkeeper.after_run.delivery import Delivery
    from upkeeper.store.history import History

SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    channel TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    notifier TEXT NOT NULL,
    ts REAL NOT NULL,
    ok INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    subject TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    alerts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS notify_deliveries_channel ON notify_deliveries(channel, target, id);
CREATE INDEX IF NOT EXISTS notify_deliveries_ts ON notify_deliveries(ts);
"""
#: Rows older than this are dropped when new ones are written.
KEEP = timedelta(days=180)


def ensure_schema(history: History) -> None:
    with history.transaction() as db:
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                db.execute(stmt)


def record(history: History, run_id: str, deliveries: Sequence[Delivery],
           now: datetime | None = None) -> None:
    """Store the deliveries of one run (one transaction) and drop rows past KEEP."""
    if not deliveries:
        return
    ensure_schema(history)
    ts = (now or datetime.now(timezone.utc)).timestamp()
    with history.transaction() as db:
        db.executemany(
            "INSERT INTO notify_deliveries (run_id, channel, target, notifier, ts, ok,"
            " attempts, subject, error, alerts) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(run_id, d.channel, d.target, d.notifier, ts, int(d.ok), d.attempts,
              d.subject, d.error, len(d.alerts)) for d in deliveries])
        db.execute("DELETE FROM notify_deliveries WHERE ts < ?",
                   (ts - KEEP.total_seconds(),))


def failing_channels(history: History) -> list[dict[str, Any]]:
    """Channels (per destination) whose last delivery failed, oldest failure first, with
    when they started failing and how many deliveries failed since.

    A destination is no longer failing once a later run of the same channel delivered
    without needing it: its undelivered alerts would have been retried then, so none are
    left (the host's address changed, or the problem went away untold).
    """
    ensure_schema(history)
    rows = history.query(
        "SELECT d.* FROM notify_deliveries d JOIN (SELECT MAX(id) AS id FROM"
        " notify_deliveries GROUP BY channel, target) last ON d.id = last.id"
        " WHERE d.ok = 0 AND NOT EXISTS (SELECT 1 FROM notify_deliveries later WHERE"
        " later.channel = d.channel AND later.id > d.id AND later.ok = 1"
        " AND later.run_id IS NOT d.run_id) ORDER BY d.ts")
    out: list[dict[str, Any]] = []
    for r in rows:
        since = history.query(
            "SELECT MIN(ts) AS since, COUNT(*) AS n FROM notify_deliveries WHERE channel=?"
            " AND target=? AND id > COALESCE((SELECT MAX(id) FROM notify_deliveries WHERE"
            " channel=? AND target=? AND ok=1), 0)",
            (r["channel"], r["target"], r["channel"], r["target"]))[0]
        out.append({"channel": r["channel"], "target": r["target"], "notifier": r["notifier"],
                    "run_id": r["run_id"], "last": _iso(r["ts"]), "error": r["error"],
                    "failing_since": _iso(since["since"]), "failures": since["n"]})
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()
