"""The sites table in the history database: which sites exist, the public key of each
site's current worker user, when it was added, revoked and provisioned on the server;
and every revoked user key (the account JWT's revocation list is rebuilt from it, so a
site re-added after a revocation keeps its old key revoked).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upkeeper.store.history import History

__all__ = ["SiteRow", "add_site", "ensure_schema", "get_site", "list_sites",
           "mark_provisioned", "revocations", "revoke_site"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS sites (
    name TEXT PRIMARY KEY,
    user_key TEXT NOT NULL,
    created REAL NOT NULL,
    issued REAL NOT NULL,
    revoked REAL,
    provisioned REAL
);
CREATE TABLE IF NOT EXISTS site_revocations (
    user_key TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    revoked INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS site_revocations_site ON site_revocations(site);
"""


@dataclass(frozen=True)
class SiteRow:
    name: str
    user_key: str
    created: float
    issued: float
    revoked: float | None
    provisioned: float | None

    @property
    def active(self) -> bool:
        return self.revoked is None


def ensure_schema(history: History) -> None:
    with history.transaction() as db:
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                db.execute(stmt)


def _row(r: sqlite3.Row) -> SiteRow:
    return SiteRow(*tuple(r))


def get_site(history: History, name: str) -> SiteRow | None:
    ensure_schema(history)
    rows = history.query("SELECT name, user_key, created, issued, revoked, provisioned"
                         " FROM sites WHERE name = ?", (name,))
    return _row(rows[0]) if rows else None


def list_sites(history: History) -> list[SiteRow]:
    ensure_schema(history)
    return [_row(r) for r in history.query(
        "SELECT name, user_key, created, issued, revoked, provisioned FROM sites"
        " ORDER BY name")]


def add_site(history: History, name: str, user_key: str, issued: int) -> SiteRow:
    """Record ``name`` with its (new) user; a site that existed keeps its creation time,
    its previous user must have been revoked first (:func:`revoke_site`)."""
    ensure_schema(history)
    now = time.time()
    with history.transaction() as db:
        db.execute(
            "INSERT INTO sites (name, user_key, created, issued) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET user_key = excluded.user_key,"
            " issued = excluded.issued, revoked = NULL",
            (name, user_key, now, float(issued)))
    row = get_site(history, name)
    assert row is not None
    return row


def revoke_site(history: History, name: str, at: int) -> SiteRow:
    """Mark ``name`` revoked at ``at`` (unix seconds) and add its user to the revocation
    list; revoking a revoked site is a no-op."""
    row = get_site(history, name)
    if row is None:
        raise KeyError(name)
    with history.transaction() as db:
        db.execute("INSERT OR IGNORE INTO site_revocations (user_key, site, revoked)"
                   " VALUES (?, ?, ?)", (row.user_key, name, at))
        db.execute("UPDATE sites SET revoked = ? WHERE name = ? AND revoked IS NULL",
                   (float(at), name))
    new = get_site(history, name)
    assert new is not None
    return new


def revocations(history: History) -> dict[str, int]:
    """User public key -> revocation time, for the account JWT."""
    ensure_schema(history)
    return {r[0]: int(r[1]) for r in history.query(
        "SELECT user_key, revoked FROM site_revocations ORDER BY user_key")}


def mark_provisioned(history: History, name: str) -> None:
    ensure_schema(history)
    with history.transaction() as db:
        db.execute("UPDATE sites SET provisioned = ? WHERE name = ?", (time.time(), name))
