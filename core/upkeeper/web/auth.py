"""Who may use the dashboard: users with argon2 password hashes or API tokens, roles
(viewer, operator) optionally scoped to clients, server-side sessions, and a login rate
limit. Kept in the history database, in this module's own tables.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from upkeeper.store.history import History

ROLES = ("viewer", "operator")
#: How long a session lasts without a new login.
SESSION_SECONDS = 12 * 3600
#: Sessions kept per user; the oldest go first.
MAX_SESSIONS = 200
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    clients TEXT NOT NULL DEFAULT '[]',
    password_hash TEXT,
    token_hash TEXT,
    created REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS web_users_token ON web_users(token_hash);
CREATE TABLE IF NOT EXISTS web_sessions (
    id_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_expires ON web_sessions(expires);
CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions(user, expires);
"""


class AuthError(ValueError):
    """A user definition that cannot be stored (bad name, role, empty password)."""


@dataclass(frozen=True)
class User:
    """A dashboard user. ``clients`` empty means every client."""

    name: str
    role: str
    clients: tuple[str, ...] = ()

    @property
    def can_act(self) -> bool:
        return self.role == "operator"

    @property
    def scoped(self) -> bool:
        return bool(self.clients)

    def sees(self, client: str | None) -> bool:
        """Whether this user may see ``client`` (None: hosts of no client)."""
        return not self.clients or (client is not None and client in self.clients)


#: The user of a loopback dashboard without any users configured.
LOCAL_USER = User("local", "operator")


def create_tables(history: History, schema: str) -> None:
    """Run ``schema``'s ``CREATE ... IF NOT EXISTS`` statements in one transaction."""
    with history.transaction() as db:
        for statement in schema.split(";"):
            if statement.strip():
                db.execute(statement)


def _digest(secret: str) -> str:
    # Session ids and tokens are 256 random bits: a fast hash is enough, and keeps a
    # stolen database from being a list of live sessions.
    return hashlib.sha256(secret.encode()).hexdigest()


class Users:
    """Users and sessions in ``history``'s database."""

    def __init__(self, history: History, clock: Callable[[], float] = time.time,
                 hasher: PasswordHasher | None = None) -> None:
        self.history = history
        self.clock = clock
        self._hasher = hasher or PasswordHasher()
        self._dummy = ""
        create_tables(history, SCHEMA)

    def configured(self) -> bool:
        return bool(self.history.query("SELECT 1 FROM web_users LIMIT 1"))

    def add(self, name: str, role: str, clients: tuple[str, ...] = (), *,
            password: str | None = None, token: bool = False) -> str | None:
        """Create or replace a user; returns the new API token when ``token``."""
        if not NAME_RE.match(name):
            raise AuthError(f"user name {name!r}: use letters, digits and . _ @ - "
                            "(at most 64)")
        if name == LOCAL_USER.name:
            raise AuthError(f"user name {name!r} is reserved for the unauthenticated"
                            " loopback dashboard")
        if role not in ROLES:
            raise AuthError(f"role {role!r}: must be one of {', '.join(ROLES)}")
        if not token and not password:
            raise AuthError(f"user {name}: empty password")
        new_token = secrets.token_urlsafe(32) if token else None
        pw_hash = self._hasher.hash(password) if password else None
        with self.history.transaction() as db:
            db.execute("INSERT OR REPLACE INTO web_users (name, role, clients, password_hash,"
                       " token_hash, created) VALUES (?,?,?,?,?,?)",
                       (name, role, json.dumps(sorted(set(clients))), pw_hash,
                        _digest(new_token) if new_token else None, self.clock()))
            # The first user ends the sessions of the unauthenticated dashboard too.
            db.execute("DELETE FROM web_sessions WHERE user IN (?, ?)",
                       (name, LOCAL_USER.name))
        return new_token

    def remove(self, name: str) -> bool:
        with self.history.transaction() as db:
            gone = db.execute("DELETE FROM web_users WHERE name=?", (name,)).rowcount
            db.execute("DELETE FROM web_sessions WHERE user=?", (name,))
        return bool(gone)

    def list(self) -> list[dict[str, Any]]:
        rows = self.history.query("SELECT * FROM web_users ORDER BY name")
        return [{"name": r["name"], "role": r["role"], "clients": json.loads(r["clients"]),
                 "password": r["password_hash"] is not None,
                 "token": r["token_hash"] is not None} for r in rows]

    def get(self, name: str) -> User | None:
        rows = self.history.query("SELECT * FROM web_users WHERE name=?", (name,))
        return _user(rows[0]) if rows else None

    def verify_password(self, name: str, password: str) -> User | None:
        rows = self.history.query("SELECT * FROM web_users WHERE name=?", (name,))
        stored = rows[0]["password_hash"] if rows else None
        if not stored and not self._dummy:
            # Verified against when the user does not exist, so both take as long.
            self._dummy = self._hasher.hash(secrets.token_hex(16))
        try:
            self._hasher.verify(stored or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        return _user(rows[0]) if stored else None

    def verify_token(self, token: str) -> User | None:
        rows = self.history.query("SELECT * FROM web_users WHERE token_hash=?",
                                  (_digest(token),))
        return _user(rows[0]) if rows else None

    def new_session(self, user: User) -> tuple[str, str]:
        """(session id for the cookie, CSRF token for the forms)."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock()
        with self.history.transaction() as db:
            db.execute("DELETE FROM web_sessions WHERE expires<?", (now,))
            db.execute("INSERT INTO web_sessions (id_hash, user, csrf, expires)"
                       " VALUES (?,?,?,?)", (_digest(sid), user.name, csrf,
                                             now + SESSION_SECONDS))
            # Bounded per user: cookie-less requests (each a new session) cannot grow it.
            db.execute("DELETE FROM web_sessions WHERE user=? AND id_hash NOT IN (SELECT"
                       " id_hash FROM web_sessions WHERE user=? ORDER BY expires DESC"
                       " LIMIT ?)", (user.name, user.name, MAX_SESSIONS))
        return sid, csrf

    def session(self, sid: str) -> tuple[User, str] | None:
        """The user and CSRF token of a live session."""
        rows = self.history.query("SELECT user, csrf, expires FROM web_sessions"
                                  " WHERE id_hash=?", (_digest(sid),))
        if not rows or rows[0]["expires"] < self.clock():
            return None
        name = rows[0]["user"]
        user = LOCAL_USER if name == LOCAL_USER.name and not self.configured() \
            else self.get(name)
        return (user, rows[0]["csrf"]) if user else None

    def end_session(self, sid: str) -> None:
        with self.history.transaction() as db:
            db.execute("DELETE FROM web_sessions WHERE id_hash=?", (_digest(sid),))


def _user(row: sqlite3.Row) -> User:
    return User(str(row["name"]), str(row["role"]), tuple(json.loads(row["clients"])))


def login_key(address: str) -> str:
    """The rate limit's key for a client address: IPv6 by /64 (one subscriber's
    network, where any address is the attacker's to pick)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"addr:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        return f"addr:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"addr:{ip}"


#: Keys the login rate limit remembers at most (bounded memory under a spray).
MAX_LIMITER_KEYS = 10_000


@dataclass
class RateLimiter:
    """At most ``limit`` failed logins per key (address, user name) in ``window``
    seconds; a success clears the key."""

    limit: int = 5
    window: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _fails: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def blocked(self, *keys: str) -> bool:
        now = self.clock()
        with self._lock:
            for key in keys:
                recent = [t for t in self._fails.get(key, []) if now - t < self.window]
                if recent:
                    self._fails[key] = recent
                else:
                    self._fails.pop(key, None)
                if len(recent) >= self.limit:
                    return True
        return False

    def attempt(self, *keys: str) -> bool:
        """Count one attempt on every key now, before its (slow) check, unless a key is
        blocked: parallel guesses cannot all pass while the first ones are checked.
        False when blocked; a success then calls :meth:`clear`."""
        now = self.clock()
        with self._lock:
            for key in keys:
                recent = [t for t in self._fails.get(key, []) if now - t < self.window]
                if len(recent) >= self.limit:
                    return False
            if len(self._fails) >= MAX_LIMITER_KEYS:
                self._prune(now)
            for key in keys:
                self._fails.setdefault(key, []).append(now)
        return True

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._fails) >= MAX_LIMITER_KEYS:
                self._prune(now)
            for key in keys:
                self._fails.setdefault(key, []).append(now)

    def _prune(self, now: float) -> None:
        """Forget expired failures, then (still full) the keys with the fewest: never
        wipe everything, or a spray of addresses would reset a user's count."""
        fails = {k: r for k, v in self._fails.items()
                 if (r := [t for t in v if now - t < self.window])}
        if len(fails) >= MAX_LIMITER_KEYS:
            keep = sorted(fails, key=lambda k: len(fails[k]), reverse=True)
            fails = {k: fails[k] for k in keep[:MAX_LIMITER_KEYS // 2]}
        self._fails = fails

    def clear(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._fails.pop(key, None)
