"""Stand-in service managers for fix tests: a ``systemctl`` script keeping unit states
in files of a temp dir (the real systemctl is never run)."""

from __future__ import annotations

import stat
from pathlib import Path

SYSTEMCTL = r"""#!/bin/sh
STATE='{state}'
cmd="$1"; shift
while [ "$1" != "--" ] && [ $# -gt 0 ]; do shift; done
[ "$1" = "--" ] && shift
unit="$1"
case "$cmd" in
  show)
    if [ ! -f "$STATE/$unit" ]; then echo LoadState=not-found; echo ActiveState=inactive; exit 0; fi
    st=$(cat "$STATE/$unit")
    echo LoadState=loaded
    echo ActiveState=$st
    if [ "$st" = active ]; then echo SubState=running; else echo SubState=dead; fi
    echo UnitFileState=enabled ;;
  restart)
    if [ -f "$STATE/$unit.broken" ]; then echo "Job for $unit failed." >&2; exit 1; fi
    if [ -f "$STATE/$unit.says" ]; then cat "$STATE/$unit.says"; fi
    if [ -f "$STATE/$unit.lies" ]; then echo "$unit" >> "$STATE/restarts.log"; exit 0; fi
    echo active > "$STATE/$unit"
    echo "$unit" >> "$STATE/restarts.log" ;;
  *) echo "stand-in systemctl: $cmd not supported" >&2; exit 1 ;;
esac
"""


class StandInSystemd:
    """Units as files: ``set(unit, "failed")``, ``state(unit)``, ``restarts()``."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.state_dir = root / "units"
        self.bin.mkdir(parents=True)
        self.state_dir.mkdir(parents=True)
        script = self.bin / "systemctl"
        script.write_text(SYSTEMCTL.format(state=self.state_dir))
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def set(self, unit: str, state: str) -> None:
        (self.state_dir / unit).write_text(state + "\n")

    def state(self, unit: str) -> str:
        return (self.state_dir / unit).read_text().strip()

    def mark(self, unit: str, flag: str, text: str = "") -> None:
        (self.state_dir / f"{unit}.{flag}").write_text(text)

    def restarts(self) -> int:
        log = self.state_dir / "restarts.log"
        return len(log.read_text().splitlines()) if log.exists() else 0
