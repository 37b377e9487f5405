"""Time the queries behind ``upkeeper state``, the dashboard's fleet and client pages and
the monthly report on a generated history (bench/history_gen.py), server-side only.

Targets (issue 19): state < 100 ms; fleet and client page data < 300 ms. Each figure is
the median of --repeat runs on a warm cache. The plans are printed too: no query may
scan the results or metrics tables.

Usage: python bench/history_queries.py DB [--client client03] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from upkeeper.monthly.facts import backup_facts, disk_forecasts, patch_facts
from upkeeper.monthly.period import month_period
from upkeeper.monthly.report import build_client_report, client_hosts
from upkeeper.monthly.state import STATE_SQL, current_state
from upkeeper.store.history import History

UTC = timezone.utc
#: Metrics a client page charts per host.
TREND_METRICS = ("/:used_pct", "pending_security", "age_hours")


def fleet_page(h: History) -> dict[str, Any]:
    """What the fleet page shows: every client's worst status and counts, problems,
    and the last run of each playbook."""
    state = current_state(h)
    last_runs = h.query("SELECT playbook, MAX(started) AS started FROM runs GROUP BY playbook")
    return {"clients": [(c.name, c.status, c.counts) for c in state.clients],
            "problems": state.problems_only().checks, "last_runs": list(last_runs)}


def client_page(h: History, client: str, now: datetime) -> dict[str, Any]:
    """What a client page shows: the hosts x checks matrix, 90 days of trend metrics,
    and 30 days of patch compliance, backups and disk forecasts."""
    state = current_state(h, client=client, now=now)
    hosts = [s.host for s in state.hosts]
    since = now - timedelta(days=90)
    trends = {(host, m): h.series(host, m, since=since) for host in hosts
              for m in TREND_METRICS}
    month = now - timedelta(days=30)
    return {"matrix": state, "trends": trends,
            "patches": patch_facts(h, hosts, month, now, timedelta(days=7)),
            "backups": backup_facts(h, hosts, month, now),
            "disks": disk_forecasts(h, hosts, month, now)}


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm the page cache
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs) * 1000


def plans(h: History, client: str) -> list[tuple[str, str]]:
    host = client_hosts(h, client)[0]
    queries = [
        ("state", STATE_SQL, ()),
        ("state (one client)", STATE_SQL + " WHERE host IN (?)", (host,)),
        ("schedule period", "SELECT json_extract(meta, '$.schedule_period') FROM runs"
                            " WHERE playbook=? ORDER BY started DESC LIMIT 1", ("daily",)),
        ("metric series", "SELECT ts, value FROM metrics WHERE host=? AND metric=?"
                          " AND ts>=? ORDER BY ts", (host, "/:used_pct", 0.0)),
        ("period results", "SELECT host, check_name, name, status, summary, ts, run_id"
                           " FROM results WHERE host=? AND ts>=? AND ts<? ORDER BY ts, id",
         (host, 0.0, 1e12)),
    ]
    out = []
    for name, sql, args in queries:
        detail = " | ".join(r[3] for r in h.query("EXPLAIN QUERY PLAN " + sql, args))
        out.append((name, detail))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db", type=Path)
    ap.add_argument("--client", default="client03")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    h = History(args.db, create=False)
    n = h.query("SELECT COUNT(*) FROM results")[0][0]
    last = h.query("SELECT MAX(ts) FROM results")[0][0]
    now = datetime.fromtimestamp(last, UTC) + timedelta(hours=1)
    month = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    figures = [
        ("state query (whole fleet)", timed(lambda: current_state(h, now=now), args.repeat),
         100),
        ("state query (one client)",
         timed(lambda: current_state(h, client=args.client, now=now), args.repeat), 100),
        ("fleet page data", timed(lambda: fleet_page(h), args.repeat), 300),
        ("client page data", timed(lambda: client_page(h, args.client, now), args.repeat),
         300),
        (f"monthly report data ({month})",
         timed(lambda: build_client_report(h, args.client, month_period(month), now=now),
               args.repeat), None),
    ]
    print(f"{args.db}: {n:,} results")
    failed = False
    for name, ms, target in figures:
        verdict = "" if target is None else (" ok" if ms < target else " OVER TARGET")
        failed |= target is not None and ms >= target
        print(f"  {name:<34} {ms:8.1f} ms" + (f"  (target < {target} ms){verdict}"
                                              if target else ""))
    for name, detail in plans(h, args.client):
        scan = "SCAN results" in detail or "SCAN metrics" in detail
        failed |= scan
        print(f"  plan {name:<20} {detail}{'  FULL SCAN' if scan else ''}")
    h.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
