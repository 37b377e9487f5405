"""Time the dashboard's pages rendered server-side on a generated history
(bench/history_gen.py: 200 hosts x 20 checks x 250 days = 1M results by default).

Each page is requested through the real application (routing, session, queries,
templates, SVG charts) in-process, without a network; the figure is the median of
--repeat requests after one warm-up. Target (issue 19): the fleet page and a client page
under 300 ms.

The pages are timed twice: as the local operator (every client) and as a viewer scoped
to the one client (queries restricted to its hosts); the second adds an API-token user
``bench-scoped`` to the database.

Usage: python bench/web_pages.py DB [--client client03] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from upkeeper.monthly.state import current_state
from upkeeper.store.history import History
from upkeeper.web.app import create_app
from upkeeper.web.auth import Users

TARGET_MS = 300.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db", type=Path)
    ap.add_argument("--client", default="client03")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    history = History(args.db, create=False)
    # A user makes the dashboard require login; the local operator is timed first.
    results = history.query("SELECT COUNT(*) FROM results")[0][0]
    state = current_state(history, client=args.client)
    client = state.client(args.client)
    if client is None:
        print(f"no client {args.client} in {args.db}", file=sys.stderr)
        return 2
    host = client.hosts[0].host
    run = history.query("SELECT id FROM runs WHERE EXISTS (SELECT 1 FROM json_each(meta,"
                        " '$.clients') c WHERE c.value=?) ORDER BY started DESC LIMIT 1",
                        (args.client,))[0][0]
    pages = [("fleet", "/", True), (f"client {args.client} (30 d)",
                                    f"/clients/{args.client}", True),
             (f"client {args.client} (90 d)", f"/clients/{args.client}?days=90", True),
             (f"host {host} (30 d)", f"/hosts/{host}", False),
             ("runs", "/runs", False), ("run", f"/runs/{run}", False)]
    print(f"{args.db}: {results:,} results; median of {args.repeat} after a warm-up")
    failed = False
    with TestClient(create_app(history), base_url="http://127.0.0.1:8470") as web:
        print("as the local operator (every client):")
        failed |= timed(web, pages, args.repeat, {})
        users = Users(history)
        users.remove("bench-scoped")
        token = users.add("bench-scoped", "viewer", (args.client,), token=True)
        print(f"as a viewer scoped to {args.client}:")
        try:
            failed |= timed(web, pages, args.repeat, {"authorization": f"Bearer {token}"})
        finally:
            users.remove("bench-scoped")
    history.close()
    return 1 if failed else 0


def timed(web: Any, pages: list[tuple[str, str, bool]], repeat: int,
          headers: dict[str, str]) -> bool:
    """Print each page's median time; True when a targeted page missed the target."""
    failed = False
    for label, url, targeted in pages:
        assert web.get(url, headers=headers).status_code == 200, url
        took = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            response = web.get(url, headers=headers)
            took.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, url
        median = statistics.median(took)
        verdict = ""
        if targeted:
            ok = median < TARGET_MS
            failed |= not ok
            verdict = f"  (target < {TARGET_MS:.0f} ms: {'ok' if ok else 'MISSED'})"
        print(f"  {label:28} {median:7.1f} ms  (min {min(took):.1f},"
              f" {len(response.content) // 1024} KiB){verdict}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
