"""How much do hosts that accept TCP but never send an SSH banner cost a fleet run?

N inventory hosts with three checks each: all but ``--silent`` of them are aliases of one
private loopback sshd, the others point at a loopback listener that accepts and never
speaks (a hung sshd, a tarpit). Runs ``upkeeper run`` as a whole process, reports the
wall time, the results by status and how many connections the silent listener accepted.
Not part of CI; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from upkeeper_ssh.testserver import SilentServer, SSHServer


def write_files(work: Path, srv: SSHServer, silent_port: int, n: int,
                silent: int) -> tuple[Path, Path]:
    kh = work / "known_hosts"
    kh.write_text(srv.known_hosts_lines())
    # Spread the silent hosts evenly, as they would be across an MSP's clients.
    mute = {i * n // silent for i in range(silent)} if silent else set()
    hosts = {f"node{i:03d}": {"ansible_port": silent_port if i in mute else srv.port}
             for i in range(n)}
    inv = work / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": hosts, "vars": {
        "ansible_host": "127.0.0.1", "ansible_user": "root", "ansible_connection": "ssh",
        "ansible_ssh_private_key_file": str(srv.client_key),
        "ssh_known_hosts_file": str(kh)}}}))
    pb = work / "playbook.yml"
    pb.write_text(yaml.safe_dump({"name": "silent", "hosts": "all", "checks": [
        {"system.uptime": {"warn_days": 100000}},
        {"name": "disk", "check": "system.command", "params": {"command": "df -P"}},
        {"name": "os", "check": "system.command", "params": {"command": "cat /etc/os-release"}},
    ]}, sort_keys=False))
    return inv, pb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--silent", type=int, default=33)
    ap.add_argument("--forks", type=int, default=20)
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="upk-silent-") as tmp:
        work = Path(tmp)
        srv = SSHServer(work / "sshd")
        srv.authorize("root")
        srv.start()
        try:
            walls = []
            for _ in range(args.reps):
                silent = SilentServer()
                inv, pb = write_files(work, srv, silent.port, args.hosts, args.silent)
                env = dict(os.environ, UPKEEPER_STATE_DIR=str(work / "state"))
                started = time.monotonic()
                proc = subprocess.run(
                    [sys.executable, "-m", "upkeeper", "run", str(pb), "-i", str(inv),
                     "--format", "json", "--forks", str(args.forks)],
                    capture_output=True, text=True, env=env, timeout=3600)
                wall = time.monotonic() - started
                silent.close()
                walls.append(wall)
                results = json.loads(proc.stdout)["results"]
                by_status: dict[str, int] = {}
                for r in results:
                    by_status[r["status"]] = by_status.get(r["status"], 0) + 1
                sample = next((r["summary"] for r in results if r["status"] != "OK"), "")
                print(f"hosts={args.hosts} silent={args.silent} forks={args.forks} "
                      f"wall={wall:.1f}s results={by_status} "
                      f"silent_accepts={silent.accepted} exit={proc.returncode}")
                print(f"  e.g. {sample[:160]}")
            if args.reps > 1:
                print(f"median wall {statistics.median(walls):.1f}s")
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
