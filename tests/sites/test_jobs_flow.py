"""The job flow end to end on a real nats-server: hub publishes, a worker runs, results
land in the hub's history as if run locally; hosts without a site run at the hub."""

from __future__ import annotations

import time
from pathlib import Path

from tests.sites.jobhelpers import WorkerThread, site_setup, wait_for
from tests.sites.natsserver import NatsServer
from upkeeper.engine.runner import run_playbook
from upkeeper.models import Result, Status
from upkeeper.sites.hub import Hub
from upkeeper.sites.streams import SiteSettings
from upkeeper.sites.worker import WorkerOptions
from upkeeper.store.history import History

FAST = SiteSettings(ack_wait=3.0, heartbeat=0.5, offline_after=2.0)


def test_site_hosts_run_at_the_worker_and_land_in_history(
        nats_server: NatsServer, tmp_path: Path) -> None:
    pb, inv, plugins = site_setup(tmp_path, {
        "far1": {"site": "acme"}, "far2": {"site": "acme"}, "near": {}},
        "echo ran {{ inventory_hostname }}")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=FAST).start()
    worker = WorkerThread("acme", nats_server.url, tmp_path / "w1", plugins=plugins)
    try:
        worker.start()
        run = run_playbook(pb, inv, plugins, history, remote=hub.remote(time.time() + 30))
    finally:
        worker.stop()
        hub.close()
    by_host = {r.host: r for r in run.results}
    assert set(by_host) == {"far1", "far2", "near"}
    assert all(r.status is Status.OK for r in run.results), run.results
    assert by_host["far1"].summary.endswith("far1")
    stored = history.query("SELECT host, status FROM results WHERE run_id=?", (run.run_id,))
    assert sorted((r["host"], r["status"]) for r in stored) == [
        ("far1", "OK"), ("far2", "OK"), ("near", "OK")]
    jobs = history.query("SELECT job_id, state, worker FROM site_jobs")
    assert {j["state"] for j in jobs} == {"done"} and len(jobs) == 2


def test_site_offline_is_one_alert_not_one_per_host(nats_server: NatsServer,
                                                    tmp_path: Path) -> None:
    import yaml

    from upkeeper.after_run.context import RunContext
    from upkeeper.after_run.pipeline import after_run
    from upkeeper.engine.playbook import load_playbook
    from upkeeper.plugins import get_plugin_manager
    from upkeeper.testing import FakeNotifier

    FakeNotifier.reset()
    _, inv, _ = site_setup(tmp_path, {f"o{i}": {"site": "acme", "client": "acme"}
                                      for i in range(4)}, "true")
    (tmp_path / "alerting.yml").write_text(yaml.safe_dump({
        "name": "alerting", "hosts": "all", "notify": [{"notifier": "fake"}],
        "checks": [{"check": "system.command", "params": {"command": "true"}},
                   {"check": "system.uptime"}]}))
    plugins = get_plugin_manager(extra_plugins=[("fake", FakeNotifier.plugin())])
    pb = load_playbook(tmp_path / "alerting.yml", plugins.registry)
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=FAST).start()
    try:
        run = run_playbook(pb, inv, plugins, history, remote=hub.remote(time.time() + 1))
    finally:
        hub.close()
    assert {r.status for r in run.results} == {Status.UNKNOWN} and len(run.results) == 8
    assert all(r.summary.startswith("site offline") for r in run.results)
    after_run(run, RunContext.for_run(run, pb, history, plugins, inventory=inv))
    assert len(FakeNotifier.sent) == 1, [n.subject for n in FakeNotifier.sent]
    assert "site offline" in FakeNotifier.sent[0].text
    FakeNotifier.reset()


def test_site_overview_shows_workers_queue_and_last_result(nats_server: NatsServer,
                                                           tmp_path: Path) -> None:
    import asyncio
    import threading

    from upkeeper.sites.liveness import site_overview

    pb, inv, plugins = site_setup(tmp_path, {"v1": {"site": "acme"}, "v2": {"site": "acme"}},
                                  "echo ok")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=FAST).start()
    assert hub.js is not None
    js = hub.js

    def overview() -> dict[str, object]:
        found = hub.call(site_overview(history, js, settings=FAST))
        return found[0].to_dict() if found else {}

    try:
        # Queued while no worker runs: the run waits in a thread.
        runner = threading.Thread(target=lambda: run_playbook(
            pb, inv, plugins, history, remote=hub.remote(time.time() + 30)))
        runner.start()
        wait_for(lambda: overview().get("queued") == 2, 20, "two queued jobs")
        queued = overview()
        assert queued["site"] == "acme" and queued["live_workers"] == 0
        assert isinstance(queued["oldest_queued_age_s"], float)
        worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins,
                              options=WorkerOptions(heartbeat=0.2))
        worker.start()
        runner.join(30)
        hub._flush_beats()
        wait_for(lambda: overview()["live_workers"] == 1 and overview()["queued"] == 0, 20,
                 "the worker seen, its jobs acked")
        live = overview()
        worker.stop()
    finally:
        hub.close()
    assert live["queued"] == 0 and live["oldest_queued_age_s"] is None
    assert live["last_result"] is not None and not live["offline"]
    assert asyncio.run(site_overview(history, None, settings=FAST))[0].site == "acme"


def test_a_site_cannot_answer_another_sites_job(nats_server: NatsServer,
                                               tmp_path: Path) -> None:
    import asyncio
    import threading

    import nats

    from upkeeper.models import RunRecord
    from upkeeper.sites.jobs import JobResult, job_id, result_to_wire

    pb, inv, plugins = site_setup(tmp_path, {"victim": {"site": "acme"}}, "echo real")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=FAST).start()
    runs: list[RunRecord] = []
    runner = threading.Thread(target=lambda: runs.append(run_playbook(
        pb, inv, plugins, history, remote=hub.remote(time.time() + 30))))
    runner.start()
    wait_for(lambda: history.query("SELECT 1 FROM site_jobs"), 20, "the job to be queued")
    jid = job_id(str(history.query("SELECT run_id FROM site_jobs")[0]["run_id"]), "victim")

    async def forge() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        for claimed_site in ("acme", "evil"):
            fake = JobResult(jid, jid.split("/")[0], claimed_site, "victim", 1, "evil-w", [
                result_to_wire(0, Result(Status.OK, "forged", host="victim",
                                         check="system.command"))])
            await js.publish("upk.results.evil", fake.to_bytes(),
                             headers={"Nats-Msg-Id": f"forged-{claimed_site}"})
        await nc.close()

    asyncio.run(forge())
    time.sleep(1.5)  # the hub has had them
    worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins)
    try:
        worker.start()
        runner.join(30)
    finally:
        worker.stop()
        hub.close()
    assert [r.summary for r in runs[0].results] == ["real"]
