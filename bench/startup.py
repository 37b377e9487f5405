"""Start-up benchmark: how long ``upkeeper`` takes before it does any work.

Times whole processes, as a user or a monitoring system starts them:
``python -c "import paramiko"`` (the floor any Python SSH tool pays), ``upkeeper --version``
and ``upkeeper run playbooks/daily-health.yml`` against an empty host selection (plugins,
playbook and inventory loaded, no host contacted). Each is measured with bytecode caching
off (``PYTHONDONTWRITEBYTECODE=1``, as on the shared development machines, so every
module is compiled on each start) and on (caches warmed first). Prints the median and the
minimum of N runs. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _time(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        samples.append(time.perf_counter() - start)
    return samples


def _drop_caches() -> None:
    """Remove the bytecode caches of upkeeper's own (editable) sources, so that "off"
    measures what a machine with PYTHONDONTWRITEBYTECODE=1 pays on every start."""
    for base in ("core", "plugins"):
        for cache in (ROOT / base).rglob("__pycache__"):
            for pyc in cache.glob("*.pyc"):
                pyc.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15, help="runs per figure")
    parser.add_argument("--python", default=sys.executable, help="interpreter to time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "empty.ini"
        inventory.write_text("[web]\n")
        upk = [args.python, "-m", "upkeeper", "--state-dir", tmp]
        cases = {
            "python -c 'import paramiko'": [args.python, "-c", "import paramiko"],
            "upkeeper --version": [*upk, "--version"],
            "upkeeper run (no hosts)": [*upk, "run", str(ROOT / "playbooks/daily-health.yml"),
                                        "-i", str(inventory)],
        }
        print(f"{'case':<30} {'bytecode':<9} {'median s':>9} {'min s':>7}  (n={args.runs})")
        for cached in (False, True):
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            if not cached:
                env["PYTHONDONTWRITEBYTECODE"] = "1"
                _drop_caches()
            for name, argv in cases.items():
                if cached:
                    _time(argv, env, 2)  # write the caches first
                samples = _time(argv, env, args.runs)
                print(f"{name:<30} {'cached' if cached else 'off':<9} "
                      f"{statistics.median(samples):9.3f} {min(samples):7.3f}", flush=True)


if __name__ == "__main__":
    main()
