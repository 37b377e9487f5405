"""Sites benchmark (issue 16): the job flow's cost on a real nats-server.

1. ``worker``: N loopback SSH hosts (aliases of one private sshd, as bench/fleet.py), 3
   checks each: a local ``upkeeper run`` against ``upkeeper run --hub`` with the same
   hosts on one site and one ``upkeeper worker`` (started beforehand, as it runs for
   months). Median wall time of each, and their ratio (target <= 1.3).
2. ``ingest``: the hub's result ingestion into SQLite, batched transactions: results
   per second (target >= 2,000), first straight into :meth:`Hub.ingest`, then end to end
   (jobs published, answered at once by an in-process responder, results consumed and
   stored through the runner).
3. ``sites``: 20 sites x 50 hosts answered by 20 in-process responders (one per site):
   p50/p99 from the job's issue at the hub to its receipt at a worker, and the wall time.

``python bench/sites.py [--n 200] [--reps 3] [--parts worker,ingest,sites]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nats
import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from fleet import Fleet, measure  # noqa: E402

from tests.sites.natsserver import NatsServer  # noqa: E402
from upkeeper.engine.playbook import Playbook  # noqa: E402
from upkeeper.engine.runner import run_playbook  # noqa: E402
from upkeeper.inventory.loader import load_inventory  # noqa: E402
from upkeeper.models import Result, Status  # noqa: E402
from upkeeper.plugins import get_plugin_manager  # noqa: E402
from upkeeper.sites import store, subjects  # noqa: E402
from upkeeper.sites.hub import Hub  # noqa: E402
from upkeeper.sites.jobs import Job, JobResult, result_to_wire  # noqa: E402
from upkeeper.store.history import History  # noqa: E402
from upkeeper_ssh.testserver import SSHServer  # noqa: E402


def part_worker(root: Path, server: NatsServer, n: int, reps: int, forks: int) -> str:
    srv = SSHServer(root / "sshd", log_level="ERROR")
    srv.authorize("root")
    srv.start()
    (root / "known_hosts").write_text(srv.known_hosts_lines())
    (root / "home").mkdir(exist_ok=True)
    worker = None
    try:
        fleet = Fleet(root, srv, n, forks)
        argv, verify = fleet.upkeeper()
        inv = yaml.safe_load((fleet.dir / "inventory.yml").read_text())
        inv["all"]["children"]["fleet"]["vars"]["site"] = "bench"
        (fleet.dir / "inventory-site.yml").write_text(yaml.safe_dump(inv))
        hub_argv = [*argv, "--hub", server.url]
        hub_argv[hub_argv.index("inventory.yml")] = "inventory-site.yml"
        env = fleet.env_for("upkeeper")
        # The site's queue exists before the worker starts (as after `sites add`).
        measure([*hub_argv, "--hub-wait", "2s"], env, fleet.dir, lambda rc, out: (True, ""))
        worker = subprocess.Popen(
            [sys.executable, "-m", "upkeeper", "worker", "--site", "bench", "--hub",
             server.url, "--concurrency", str(forks), "--state-dir", str(root / "wstate")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        measure(argv, env, fleet.dir, verify)  # warm-up
        local, hub, hub_rss = [], [], []
        for _ in range(reps):
            s = measure(argv, env, fleet.dir, verify)
            local.append(s.wall)
            h = measure(hub_argv, env, fleet.dir, verify)
            hub.append(h.wall)
            hub_rss.append(h.rss_mb)
            print(f"N={n} local {s.wall:.2f}s ({s.note})  hub+worker {h.wall:.2f}s "
                  f"({h.note})", file=sys.stderr, flush=True)
        lm, hm = statistics.median(local), statistics.median(hub)
        worker_rss = peak_rss_mb(worker.pid)
        return (f"| worker vs local, N={n} hosts x 3 SSH checks, forks/concurrency {forks} "
                f"| local {lm:.2f} s, hub+worker {hm:.2f} s, ratio {hm / lm:.2f}; peak RSS "
                f"hub run {max(hub_rss):.0f} MB, worker {worker_rss:.0f} MB |")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(20)
        srv.stop()


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def part_ingest_direct(root: Path, server: NatsServer, total: int) -> str:
    history = History(root / "ingest.db")
    hub = Hub(server.url, history).start()
    try:
        payloads = []
        rows = []
        for i in range(total // 3):
            jid = f"run-x/h{i}"
            rows.append((jid, "run-x", "s", f"h{i}", time.time() + 600))
            payloads.append(("upk.results.s", JobResult(jid, "run-x", "s", f"h{i}", 1, "w", [
                result_to_wire(k, Result(Status.OK, "fine", {"m": 1.0}, host=f"h{i}",
                                         check=f"c{k}")) for k in range(3)]).to_bytes()))
        store.record_published(history, rows)
        t0 = time.perf_counter()
        for i in range(0, len(payloads), 500):
            hub.ingest(payloads[i:i + 500])
        took = time.perf_counter() - t0
    finally:
        hub.close()
    stored = history.query("SELECT count(*) AS n FROM results")[0]["n"]
    return (f"| hub ingest into SQLite (batches of 500 jobs x 3 results) | {stored} results"
            f" in {took:.2f} s = {stored / took:,.0f} results/s |")


async def responder(url: str, site: str, latencies: list[float], stop: asyncio.Event) -> None:
    """A stand-in worker that answers every job at once: measures the flow, not checks."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = None
    while not stop.is_set():
        try:
            if sub is None:
                sub = await js.pull_subscribe_bind(durable=subjects.CONSUMER,
                                                   stream=subjects.jobs_stream(site))
            msgs = await sub.fetch(100, timeout=0.5)
        except Exception:
            continue
        for msg in msgs:
            job = Job.from_bytes(msg.data)
            latencies.append(time.time() - job.issued)
            out = [result_to_wire(i, Result(Status.OK, "fine", {"m": 1.0}, host=job.host,
                                            check=str(c["check"])))
                   for i, c in enumerate(job.checks)]
            result = JobResult(job.job_id, job.run_id, site, job.host, 1, "bench", out)
            await js.publish(subjects.results_subject(site), result.to_bytes(),
                             headers={"Nats-Msg-Id": f"{job.job_id}#1"})
            await msg.ack()
    await nc.close()


def flow(root: Path, server: NatsServer, sites: int, per_site: int, tag: str
         ) -> tuple[float, int, list[float]]:
    inv = {"all": {"hosts": {f"{tag}-s{s}-h{h}": {"site": f"{tag}{s}",
                                                   "ansible_connection": "local"}
                             for s in range(sites) for h in range(per_site)}}}
    (root / f"{tag}.yml").write_text(yaml.safe_dump(inv))
    pb = Playbook.model_validate({"name": tag, "hosts": "all", "checks": [
        {"check": "system.uptime"}, {"check": "system.command", "params": {"command": "a"}},
        {"check": "system.command", "params": {"command": "b"}}]})
    plugins = get_plugin_manager()
    history = History(root / f"{tag}.db")
    hub = Hub(server.url, history).start()
    for s in range(sites):
        hub.ensure_site(f"{tag}{s}")
    latencies: list[float] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def all_responders() -> None:
        await asyncio.gather(*(responder(server.url, f"{tag}{s}", latencies, stop)
                               for s in range(sites)))

    t = threading.Thread(target=loop.run_until_complete, args=(all_responders(),))
    t.start()
    time.sleep(1)
    try:
        t0 = time.perf_counter()
        run = run_playbook(pb, load_inventory([str(root / f"{tag}.yml")]), plugins, history,
                           remote=hub.remote(time.time() + 300), forks=1)
        wall = time.perf_counter() - t0
    finally:
        loop.call_soon_threadsafe(stop.set)
        t.join(30)
        hub.close()
    ok = sum(r.status is Status.OK for r in run.results)
    return wall, ok, latencies


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--forks", type=int, default=25)
    ap.add_argument("--parts", default="worker,ingest,sites")
    ap.add_argument("--ingest", type=int, default=30000, help="results for the ingest part")
    args = ap.parse_args()
    lines = ["| part | figure |", "|---|---|"]
    with tempfile.TemporaryDirectory(prefix="upkeeper-bench-sites-") as tmp:
        root = Path(tmp)
        server = NatsServer(root / "nats").start()
        try:
            parts = args.parts.split(",")
            if "ingest" in parts:
                lines.append(part_ingest_direct(root, server, args.ingest))
                wall, ok, _ = flow(root, server, 1, args.ingest // 3, "ing")
                lines.append(f"| ingest end to end (1 site, {args.ingest // 3} jobs x 3 "
                             f"results, publish + respond + store) | {ok} results in "
                             f"{wall:.2f} s = {ok / wall:,.0f} results/s |")
            if "sites" in parts:
                wall, ok, lat = flow(root, server, 20, 50, "fan")
                lines.append(f"| 20 sites x 50 hosts, 3 checks: job issued -> received "
                             f"at worker | p50 {pct(lat, 50) * 1000:.0f} ms, p99 "
                             f"{pct(lat, 99) * 1000:.0f} ms; run wall {wall:.2f} s, "
                             f"{ok} results OK |")
            if "worker" in parts:
                lines.append(part_worker(root, server, args.n, args.reps, args.forks))
        finally:
            server.stop()
    header = (f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
              f", load {os.getloadavg()[0]:.1f}")
    print(header + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
