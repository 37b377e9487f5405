"""Generate a history database of realistic shape and size for the speed benchmarks.

Default: 200 hosts x 20 checks x 250 days = 1,000,000 results (one daily scheduled run
per client and day), with metrics for disks, backups and patching, incidents that come
and go, one host per client that goes down for a while, and the ``current`` table the
store keeps. Everything is written with executemany in one transaction.

Usage: python bench/history_gen.py DB [--hosts 200] [--checks 20] [--days 250]
Also imported by tests (small sizes) through :func:`generate`.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from upkeeper.store.current import SCHEMA as CURRENT_SCHEMA
from upkeeper.store.history import History

UTC = timezone.utc
BASE_CHECKS = ["disk.usage", "backup.restic", "patching.status", "patching.apply",
               "system.uptime"]
DAY = 86400.0


@dataclass
class Generated:
    results: int
    metrics: int
    runs: int
    seconds: float
    start: datetime
    end: datetime
    clients: dict[str, list[str]]


def check_names(count: int) -> list[str]:
    extra = [f"system.command.svc{i:02d}" for i in range(max(0, count - len(BASE_CHECKS)))]
    return (BASE_CHECKS + extra)[:count]


def _metrics(check: str, day: int, state: dict[str, float], rng: random.Random,
             bad: bool) -> dict[str, float]:
    if check == "disk.usage":
        used = state.setdefault("used", rng.uniform(30, 70))
        used = min(99.0, used + rng.uniform(0, 0.25))
        if used > 95 and rng.random() < 0.05:
            used = rng.uniform(40, 60)  # someone cleaned up
        state["used"] = used
        out = {"/:used_pct": round(used, 2), "/var:used_pct": round(used * 0.8, 2)}
        if used > 75:
            out["/:days_to_full"] = round((100 - used) / 0.125, 1)
        return out
    if check == "backup.restic":
        out = {"age_hours": round(rng.uniform(2, 20) if not bad else 40.0, 2),
               "integrity_ok": 0.0 if bad else 1.0}
        if day % 7 == 0:
            out["restore_ok"] = 0.0 if bad else 1.0
        return out
    if check == "patching.status":
        pending = 0 if day % 7 == 0 else rng.randint(0, 12)
        return {"pending_total": pending, "pending_security": 1 if bad else 0}
    if check == "patching.apply":
        return {"installed": rng.randint(0, 15), "rebooted": float(rng.random() < 0.3)} \
            if day % 7 == 0 else {}
    if check == "system.uptime":
        return {"uptime_days": float(day % 30)}
    return {}


def generate(path: str | Path, *, hosts: int = 200, checks: int = 20, days: int = 250,
             clients: int = 10, end: datetime | None = None, seed: int = 1,
             incident_rate: float = 0.002) -> Generated:
    """Write a generated history to ``path`` (created through :class:`History`, so the
    schema is the real one). Runs are at 02:00 UTC daily, the last one before ``end``."""
    t0 = time.perf_counter()
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    first_day = (end - timedelta(days=days)).replace(hour=2, minute=0, second=0,
                                                     microsecond=0)
    History(path).close()
    db = sqlite3.connect(str(path), isolation_level=None)
    db.executescript(CURRENT_SCHEMA)
    names = check_names(checks)
    host_names = [f"h{i:03d}.c{i % clients:02d}" for i in range(hosts)]
    by_client: dict[str, list[str]] = {}
    for h in host_names:
        by_client.setdefault(f"client{int(h.split('.c')[1]):02d}", []).append(h)
    runs, results, metrics = [], [], []
    current: dict[tuple[str, str], tuple[object, ...]] = {}
    bad: dict[tuple[str, str], bool] = {}
    mstate: dict[tuple[str, str], dict[str, float]] = {}
    # One host per client is unreachable for three days in the middle.
    down_days = range(days // 2, days // 2 + 3)
    rid = 0
    n_results = n_metrics = 0
    db.execute("BEGIN")
    for day in range(days):
        ts0 = (first_day + timedelta(days=day)).timestamp()
        for client, members in by_client.items():
            run_id = f"gen-{day:04d}-{client}"
            down_host = members[0] if day in down_days else None
            meta = {"trigger": "schedule", "schedule_period": DAY,
                    "clients": {h: client for h in members}}
            if down_host:
                meta["unreachable"] = {down_host: "connection refused"}
            runs.append((run_id, "daily", ts0, ts0 + 600, "OK", json.dumps(meta)))
            for hi, host in enumerate(members):
                for ci, check in enumerate(names):
                    rid += 1
                    ts = ts0 + hi * 2 + ci * 0.05
                    key = (host, check)
                    if host == down_host:
                        status, summary = "UNKNOWN", "not run: connection refused"
                    else:
                        was = bad.get(key, False)
                        now_bad = rng.random() < 0.5 if was else rng.random() < incident_rate
                        bad[key] = now_bad
                        status = ("CRIT" if rng.random() < 0.3 else "WARN") if now_bad \
                            else "OK"
                        summary = f"{check}: {'problem seen' if now_bad else 'all good'}"
                        for name, value in _metrics(check, day, mstate.setdefault(key, {}),
                                                    rng, now_bad).items():
                            metrics.append((rid, host, check, name, value, ts))
                    results.append((rid, run_id, host, check, check, status, summary, ts))
                    current[key] = (host, check, check, rid, run_id, status, summary, ts)
        # A day at a time keeps memory flat; still one transaction.
        db.executemany("INSERT INTO runs (id, playbook, started, finished, status, meta)"
                       " VALUES (?,?,?,?,?,?)", runs)
        db.executemany("INSERT INTO results (id, run_id, host, check_name, name, status,"
                       " summary, ts) VALUES (?,?,?,?,?,?,?,?)", results)
        db.executemany("INSERT INTO metrics (result_id, host, check_name, metric, value, ts)"
                       " VALUES (?,?,?,?,?,?)", metrics)
        n_results, n_metrics = n_results + len(results), n_metrics + len(metrics)
        runs.clear()
        results.clear()
        metrics.clear()
    db.executemany("INSERT OR REPLACE INTO current (host, check_name, name, result_id,"
                   " run_id, status, summary, ts) VALUES (?,?,?,?,?,?,?,?)",
                   list(current.values()))
    db.executemany("INSERT OR REPLACE INTO state (host, check_name, key, value, updated)"
                   " VALUES (?,?,?,?,?)",
                   [(h, "_upkeeper", "client", json.dumps(c), ts0)
                    for c, members in by_client.items() for h in members])
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    return Generated(n_results, n_metrics, days * len(by_client), time.perf_counter() - t0,
                     first_day, first_day + timedelta(days=days), by_client)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db", type=Path)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--checks", type=int, default=20)
    ap.add_argument("--days", type=int, default=250)
    ap.add_argument("--clients", type=int, default=10)
    args = ap.parse_args(argv)
    if args.db.exists():
        print(f"{args.db} exists: give a new path", file=sys.stderr)
        return 2
    g = generate(args.db, hosts=args.hosts, checks=args.checks, days=args.days,
                 clients=args.clients)
    size = args.db.stat().st_size / 2**20
    print(f"{args.db}: {g.results:,} results, {g.metrics:,} metric values, {g.runs:,} runs"
          f" in {g.seconds:.1f}s ({size:.0f} MiB); {g.start:%Y-%m-%d} to {g.end:%Y-%m-%d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
