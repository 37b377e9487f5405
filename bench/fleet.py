"""Fleet benchmark: upkeeper vs a plain paramiko thread pool vs ansible-core (vs pyinfra).

N inventory hosts are aliases of one private loopback sshd; each runs three checks
(uptime, ``df -P``, ``cat /etc/os-release``). Every tool runs as a whole process; we
report the median wall time, hosts per second and peak RSS (ru_maxrss of the process
tree's largest process, from wait4). See bench/README.md.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from upkeeper_ssh.testserver import SSHServer

HERE = Path(__file__).resolve().parent
ANSIBLE_VENV = HERE / ".venv-ansible"
PYINFRA_VENV = HERE / ".venv-pyinfra"


@dataclass
class Sample:
    wall: float
    rss_mb: float
    cpu: float
    ok: bool
    note: str = ""


@dataclass
class Outcome:
    tool: str
    n: int
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def rss(self) -> float:
        return max(s.rss_mb for s in self.samples)

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.samples)


def measure(argv: list[str], env: dict[str, str], cwd: Path,
            verify: Callable[[int, str], tuple[bool, str]]) -> Sample:
    """Run argv to completion; wall time and the peak RSS of its largest process."""
    out_path = cwd / "stdout.txt"
    with open(out_path, "wb") as out, open(cwd / "stderr.txt", "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    ok, note = verify(proc.returncode, out_path.read_text(errors="replace"))
    if not ok:
        note += " | stderr: " + (cwd / "stderr.txt").read_text(errors="replace")[-500:]
    return Sample(wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, ok, note)


class Fleet:
    """The generated inventories/playbooks for one N, for each tool."""

    def __init__(self, root: Path, srv: SSHServer, n: int, forks: int,
                 baseline: Path | None = None) -> None:
        self.baseline = baseline
        self.dir = root / f"n{n}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.srv, self.n, self.forks = srv, n, forks
        self.names = [f"node{i:04d}" for i in range(n)]
        self.known_hosts = root / "known_hosts"
        self.env = dict(os.environ, UPKEEPER_STATE_DIR=str(self.dir / "state"),
                        HOME=str(root / "home"))
        # Installed software has its bytecode cached; compiling ~80 modules per start
        # would be measured otherwise (some CI images set this variable).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def env_for(self, tool: str) -> dict[str, str]:
        if tool == "upkeeper-lean":
            return dict(self.env, UPKEEPER_DISABLE_PLUGINS="winrm,disk,patching,backup,notify")
        if tool == "upkeeper-baseline" and self.baseline is not None:
            return dict(self.env, PYTHONPATH=os.pathsep.join(
                [str(self.baseline / "core"), str(self.baseline / "plugins")]))
        return self.env

    def upkeeper(self) -> tuple[list[str], Callable[[int, str], tuple[bool, str]]]:
        inv = {"all": {"children": {"fleet": {
            "hosts": {name: {} for name in self.names},
            "vars": {"ansible_host": "127.0.0.1", "ansible_port": self.srv.port,
                     "ansible_user": "root",
                     "ansible_ssh_private_key_file": str(self.srv.client_key),
                     "ssh_known_hosts_file": str(self.known_hosts)}}}}}
        (self.dir / "inventory.yml").write_text(yaml.safe_dump(inv))
        pb = {"name": "fleet bench", "hosts": "fleet", "forks": self.forks, "checks": [
            {"system.uptime": {"warn_days": 100000}},
            {"name": "disk", "check": "system.command", "params": {"command": "df -P"}},
            {"name": "os", "check": "system.command",
             "params": {"command": "cat /etc/os-release"}}]}
        (self.dir / "playbook.yml").write_text(yaml.safe_dump(pb, sort_keys=False))
        argv = [sys.executable, "-m", "upkeeper", "run", "playbook.yml", "-i", "inventory.yml",
                "--format", "json", "--forks", str(self.forks)]

        def verify(rc: int, out: str) -> tuple[bool, str]:
            try:
                results = json.loads(out)["results"]
            except (ValueError, KeyError):
                return False, f"rc={rc}, no JSON"
            good = sum(r["status"] == "OK" for r in results)
            return good == 3 * self.n, f"{good}/{3 * self.n} OK"

        return argv, verify

    def upkeeper_lean(self) -> tuple[list[str], Callable[[int, str], tuple[bool, str]]]:
        """upkeeper with the plugins this playbook does not use disabled (diagnostic:
        shows what loading every plugin costs a run)."""
        return self.upkeeper()

    def upkeeper_baseline(self) -> tuple[list[str], Callable[[int, str], tuple[bool, str]]]:
        """upkeeper from another checkout (``--baseline DIR``), interleaved with this one
        to measure a change under the same machine load."""
        return self.upkeeper()

    def floor(self) -> tuple[list[str], Callable[[int, str], tuple[bool, str]]]:
        host_key = self.srv.host_keys[0].with_suffix(".pub").read_text().split()[1]
        spec = {"key": str(self.srv.client_key), "host_key": host_key,
                "hosts": [{"host": "127.0.0.1", "port": self.srv.port, "user": "root"}
                          for _ in self.names]}
        (self.dir / "floor.json").write_text(json.dumps(spec))
        argv = [sys.executable, str(HERE / "paramiko_floor.py"), "floor.json", str(self.forks)]

        def verify(rc: int, out: str) -> tuple[bool, str]:
            good = int(out.strip() or 0) if rc == 0 else 0
            return good == 3 * self.n, f"{good}/{3 * self.n} ok"

        return argv, verify

    def ansible(self) -> tuple[list[str], Callable[[int, str], tuple[bool, str]]]:
        lines = ["[fleet]"] + [
            f"{name} ansible_host=127.0.0.1 ansible_port={self.srv.port} ansible_user=root "
            f"ansible_ssh_private_key_file={self.srv.client_key}" for name in self.names]
        lines += ["", "[fleet:vars]", "ansible_python_interpreter=/usr/bin/python3",
                  f"ansible_ssh_common_args='-o UserKnownHostsFile={self.known_hosts}'"]
        (self.dir / "hosts.ini").write_text("\n".join(lines) + "\n")
        play = [{"hosts": "fleet", "gather_facts": False, "tasks": [
            {"name": "uptime", "command": "cat /proc/uptime"},
            {"name": "disk", "command": "df -P"},
            {"name": "os", "command": "cat /etc/os-release"}]}]
        (self.dir / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
        argv = [str(ANSIBLE_VENV / "bin" / "ansible-playbook"), "-i", "hosts.ini", "-f",
                str(self.forks), "play.yml"]

        def verify(rc: int, out: str) -> tuple[bool, str]:
            good = out.count(" ok=3 ")
            return rc == 0 and good == self.n, f"{good}/{self.n} hosts ok=3"

        return argv, verify

    def pyinfra(self) -> tuple[list[str], Callable[[int, str], tuple[bool, str]]]:
        data = {"ssh_hostname": "127.0.0.1", "ssh_port": self.srv.port, "ssh_user": "root",
                "ssh_key": str(self.srv.client_key),
                "ssh_known_hosts_file": str(self.known_hosts)}
        hosts = [(name, data) for name in self.names]
        (self.dir / "inventory.py").write_text(f"fleet = {hosts!r}\n")
        (self.dir / "deploy.py").write_text(
            "from pyinfra.operations import server\n"
            "server.shell(name='uptime', commands=['cat /proc/uptime'])\n"
            "server.shell(name='disk', commands=['df -P'])\n"
            "server.shell(name='os', commands=['cat /etc/os-release'])\n")
        argv = [str(PYINFRA_VENV / "bin" / "pyinfra"), "-y", "--parallel", str(self.forks),
                "inventory.py", "deploy.py"]

        def verify(rc: int, out: str) -> tuple[bool, str]:
            return rc == 0, f"rc={rc}"

        return argv, verify


def available(tool: str, baseline: Path | None = None) -> bool:
    if tool == "upkeeper-baseline":
        return baseline is not None
    if tool == "ansible":
        return (ANSIBLE_VENV / "bin" / "ansible-playbook").exists()
    if tool == "pyinfra":
        return (PYINFRA_VENV / "bin" / "pyinfra").exists()
    return True


def report(outcomes: list[Outcome]) -> str:
    rows = ["| N | tool | median wall s | hosts/s | peak RSS MB | client CPU s | wall vs floor "
            "| runs |", "|---|---|---|---|---|---|---|---|"]
    floors = {o.n: o.wall for o in outcomes if o.tool == "paramiko-floor" and o.ok}
    for o in outcomes:
        ratio = f"{o.wall / floors[o.n]:.2f}x" if o.n in floors else "-"
        flag = "" if o.ok else " (FAILED: " + o.samples[-1].note[:120] + ")"
        rows.append(f"| {o.n} | {o.tool}{flag} | {o.wall:.2f} | {o.n / o.wall:.1f} | "
                    f"{o.rss:.0f} | {o.cpu:.2f} | {ratio} | {len(o.samples)} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10,50,200")
    ap.add_argument("--forks", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ansible-reps", type=int, default=3)
    ap.add_argument("--tools", default="paramiko-floor,upkeeper,pyinfra,ansible")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="another upkeeper checkout, run as tool upkeeper-baseline "
                         "(added to --tools)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        if "upkeeper-baseline" not in args.tools.split(","):
            args.tools += ",upkeeper-baseline"
    tools = [t for t in args.tools.split(",") if available(t, args.baseline)]
    skipped = [t for t in args.tools.split(",") if t not in tools]
    with tempfile.TemporaryDirectory(prefix="upkeeper-bench-") as tmp:
        root = Path(tmp)
        (root / "home").mkdir()
        srv = SSHServer(root / "sshd", log_level="ERROR")
        srv.authorize("root")
        srv.start()
        (root / "known_hosts").write_text(srv.known_hosts_lines())
        outcomes: list[Outcome] = []
        try:
            for n in sizes:
                fleet = Fleet(root, srv, n, args.forks, args.baseline)
                runs = {tool: getattr(fleet, tool.replace("paramiko-", "").replace("-", "_"))()
                        for tool in tools}
                by_tool = {tool: Outcome(tool, n) for tool in tools}
                for tool, (argv, verify) in runs.items():
                    # Warm-up, not measured: bytecode, page cache, sshd. ansible is slow
                    # enough not to need one per size.
                    if tool != "ansible" or n == sizes[0]:
                        measure(argv, fleet.env_for(tool), fleet.dir, verify)
                # Rounds interleave the tools so a change in machine load hits all alike.
                for rep in range(max(args.reps, args.ansible_reps)):
                    for tool in tools:
                        reps = args.ansible_reps if tool == "ansible" else args.reps
                        if rep >= reps:
                            continue
                        argv, verify = runs[tool]
                        sample = measure(argv, fleet.env_for(tool), fleet.dir, verify)
                        by_tool[tool].samples.append(sample)
                        print(f"N={n} {tool}: {sample.wall:.2f}s {sample.rss_mb:.0f}MB "
                              f"cpu {sample.cpu:.2f}s {sample.note}", file=sys.stderr,
                              flush=True)
                outcomes.extend(by_tool.values())
        finally:
            srv.stop()
    table = report(outcomes)
    header = (f"forks {args.forks}, {os.cpu_count()} CPUs, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if skipped:
        header += f"; not installed: {', '.join(skipped)}"
    print(f"{header}\n\n{table}")
    args.out.mkdir(exist_ok=True)
    (args.out / f"fleet-{time.strftime('%Y%m%dT%H%M%S')}.md").write_text(
        f"{header}\n\n{table}\n")


if __name__ == "__main__":
    main()
