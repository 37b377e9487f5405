"""As-built documents benchmark: ``upkeeper docs build`` for 500 hosts.

Each host has two stored docs.collect results (two months apart, with a few structural
changes and volatile noise) of realistic size: 1500 packages, 40 listening ports, 120
services. The build runs as a whole process (``python -m upkeeper docs build``): first
with the results still to snapshot (ingest included), then again from the snapshots.
Reports wall and CPU time, peak RSS, the number of files and the largest file; the
acceptance is under 30 s on 2 cores with no file over 2 MB. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.asbuilt.factsgen import DAY, NOW, doc, later  # noqa: E402
from upkeeper.models import Result, RunRecord, Status  # noqa: E402
from upkeeper.store.history import History  # noqa: E402

LIMIT_S, LIMIT_BYTES = 30.0, 2 * 1024 * 1024


def host_doc(n: int) -> dict[str, Any]:
    d = doc(f"srv{n:04d}", f"m{n:08x}", NOW - 65 * DAY, software=1500, seed=n)
    s = d["sections"]
    s["ports"]["items"] = [{"proto": "tcp", "address": "0.0.0.0", "port": 1000 + p,
                            "process": f"svc{p}"} for p in range(40)]
    s["services"]["items"] = [{"name": f"service-{p:03d}", "enabled": p % 3 != 0,
                               "running": p % 2 == 0} for p in range(120)]
    return d


def seed(state: Path, hosts: int) -> None:
    history = History(state / "history.sqlite3")
    # The first collection is before the default --since (the previous month's start),
    # so every host is compared in full, not merely "appeared".
    for run_no, shift in ((1, 0.0), (2, 64.0)):
        when = datetime.fromtimestamp(NOW - 65 * DAY + shift * DAY, tz=timezone.utc)
        run_id = f"bench-{run_no}"
        history.start_run(RunRecord(run_id=run_id, playbook="docs", started=when))
        for n in range(hosts):
            base = host_doc(n)

            def edit(d: dict[str, Any], n: int = n) -> None:
                d["sections"]["software"]["items"][n % 1500]["version"] += ".1"
                d["sections"]["admins"]["items"].append({"name": f"op{n}", "group": "sudo"})
            facts = base if run_no == 1 else later(base, shift, edit)
            history.add_result(run_id, Result(Status.OK, "facts", details={"facts": facts},
                                              host=facts["host"], check="docs.collect",
                                              started=when))
            history.set_state(facts["host"], "_upkeeper", "client", f"client{n % 5}"
                              if hosts > 100 and n >= hosts // 2 else "bigco")
    history.close()


def build(state: Path, out: Path) -> dict[str, float]:
    env = {**os.environ, "UPKEEPER_STATE_DIR": str(state)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "upkeeper", "docs", "build", "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    files = [p for p in out.rglob("*") if p.is_file()]
    largest = max(files, key=lambda p: p.stat().st_size)
    return {"wall_s": round(wall, 2),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime
                           - before.ru_stime, 2),
            "peak_rss_mb": round(after.ru_maxrss / 1024, 1), "files": len(files),
            "largest_bytes": largest.stat().st_size,
            "largest": str(largest.relative_to(out)),
            "total_mb": round(sum(p.stat().st_size for p in files) / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        t0 = time.monotonic()
        seed(state, args.hosts)
        print(f"seeded {args.hosts} hosts x 2 results in {time.monotonic() - t0:.1f}s",
              file=sys.stderr)
        first = build(state, Path(tmp) / "out1")
        second = build(state, Path(tmp) / "out2")
        same = all((Path(tmp) / "out1" / p.relative_to(Path(tmp) / "out2")).read_bytes()
                   == p.read_bytes() for p in (Path(tmp) / "out2").rglob("*")
                   if p.is_file() and p.suffix in (".json", ".md"))
        ok = all(r["wall_s"] < LIMIT_S and r["largest_bytes"] < LIMIT_BYTES
                 for r in (first, second)) and same
        print(json.dumps({"hosts": args.hosts, "cores": os.cpu_count(),
                          "first_build_with_ingest": first, "rebuild": second,
                          "json_md_identical": same, "pass": ok}, indent=1))


if __name__ == "__main__":
    main()
