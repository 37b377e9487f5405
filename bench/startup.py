"""Start-up benchmark: how long ``upkeeper`` takes before it does any work.

Times whole processes, as a user or a monitoring system starts them:
``python -c "import paramiko"`` (the floor any Python SSH tool pays), ``upkeeper --version``
and ``upkeeper run playbooks/daily-health.yml`` against an empty host selection (plugins,
playbook and inventory loaded, no host contacted). Each is measured with bytecode caching
off (``PYTHONDONTWRITEBYTECODE=1``, as on the shared development machines, so every
module is compiled on each start) and on (caches warmed first). Prints the median and the
minimum wall time of N runs, and the median CPU time (user + system, steadier than wall
time on a loaded machine).

``--baseline DIR`` also times another checkout of upkeeper (``DIR/core`` and
``DIR/plugins`` put first on ``PYTHONPATH``, same interpreter and installed packages),
alternating run by run with this one so that changes in machine load hit both alike.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _drop_caches(trees: list[Path]) -> None:
    """Remove the bytecode caches of upkeeper's own (editable) sources, so that "off"
    measures what a machine with PYTHONDONTWRITEBYTECODE=1 pays on every start."""
    for tree in trees:
        for base in ("core", "plugins"):
            for cache in (tree / base).rglob("__pycache__"):
                for pyc in cache.glob("*.pyc"):
                    pyc.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15, help="runs per figure")
    parser.add_argument("--python", default=sys.executable, help="interpreter to time")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="another upkeeper checkout to time alternately with this one")
    args = parser.parse_args()

    trees = {"": ROOT}
    if args.baseline is not None:
        trees = {"baseline ": args.baseline.resolve(), "this ": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "empty.ini"
        inventory.write_text("[web]\n")
        upk = [args.python, "-m", "upkeeper", "--state-dir", tmp]
        cases = {
            "upkeeper --version": [*upk, "--version"],
            "upkeeper run (no hosts)": [*upk, "run", str(ROOT / "playbooks/daily-health.yml"),
                                        "-i", str(inventory)],
        }
        print(f"{'case':<40} {'bytecode':<9} {'median s':>9} {'min s':>7} {'cpu s':>7}"
              f"  (n={args.runs})")
        for cached in (False, True):
            base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            if not cached:
                base_env["PYTHONDONTWRITEBYTECODE"] = "1"
                _drop_caches(list(trees.values()))
            runs: dict[str, tuple[list[str], dict[str, str]]] = {
                "python -c 'import paramiko'": ([args.python, "-c", "import paramiko"],
                                                base_env)}
            for label, tree in trees.items():
                env = dict(base_env)
                if args.baseline is not None:
                    env["PYTHONPATH"] = os.pathsep.join(
                        [str(tree / "core"), str(tree / "plugins"),
                         *filter(None, [os.environ.get("PYTHONPATH")])])
                for name, argv in cases.items():
                    runs[label + name] = (argv, env)
            if cached:
                for argv, env in runs.values():
                    _once(argv, env)  # write the caches first
                    _once(argv, env)
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
            for _ in range(args.runs):  # interleaved: load changes hit every case alike
                for name, (argv, env) in runs.items():
                    samples[name].append(_once(argv, env))
            for name, got in samples.items():
                walls, cpus = [w for w, _ in got], [c for _, c in got]
                print(f"{name:<40} {'cached' if cached else 'off':<9} "
                      f"{statistics.median(walls):9.3f} {min(walls):7.3f} "
                      f"{statistics.median(cpus):7.3f}", flush=True)


if __name__ == "__main__":
    main()
