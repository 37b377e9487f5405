"""A separate upkeeper process for the kill -9 test: runs cycles START..END of a flapping
service (the stand-in systemctl on PATH) with a clock of 5 minutes per cycle, printing
``cycle N`` after each one."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.remediation.conftest import Clock, Cycle, local
from upkeeper.store.history import History

BASE = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def main() -> None:
    db, pb, start, end = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    clock = Clock(BASE)
    cycle = Cycle(pb, History(db), clock, [local()])
    state = Path(_state_dir()) / "nginx"
    for n in range(start, end):
        clock.now = BASE + timedelta(minutes=5 * n)
        state.write_text("failed\n")
        cycle.run()
        print(f"cycle {n}", flush=True)


def _state_dir() -> str:
    import shutil

    script = shutil.which("systemctl")
    assert script is not None
    for line in Path(script).read_text().splitlines():
        if line.startswith("STATE="):
            return line.split("=", 1)[1].strip("'")
    raise SystemExit("not the stand-in systemctl")


if __name__ == "__main__":
    main()
