"""The history database's tables (created on open; ``CREATE ... IF NOT EXISTS``)."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    playbook TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    status TEXT,
    check_mode INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    host TEXT NOT NULL,
    check_name TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    details TEXT,
    changed INTEGER NOT NULL DEFAULT 0,
    duration REAL NOT NULL DEFAULT 0,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_host_check ON results(host, check_name, ts);
CREATE INDEX IF NOT EXISTS results_run ON results(run_id);
CREATE TABLE IF NOT EXISTS metrics (
    result_id INTEGER NOT NULL REFERENCES results(id),
    host TEXT NOT NULL,
    check_name TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_series ON metrics(host, metric, ts);
CREATE INDEX IF NOT EXISTS metrics_result ON metrics(result_id);
CREATE TABLE IF NOT EXISTS state (
    host TEXT NOT NULL,
    check_name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (host, check_name, key)
);
"""
