"""The worker's job flow works under a user restricted to ``worker_permissions(site)``
(the contract sites-auth's credentials grant): nothing it does needs more."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.sites.jobhelpers import WorkerThread, site_setup
from tests.sites.natsserver import NatsServer, nats_server_binary
from upkeeper.engine.runner import run_playbook
from upkeeper.models import Status
from upkeeper.sites.hub import Hub
from upkeeper.sites.streams import SiteSettings
from upkeeper.sites.subjects import worker_permissions


def test_worker_flow_needs_nothing_beyond_its_permissions(tmp_path: Path) -> None:
    assert nats_server_binary() is not None
    users = [{"user": "hub", "password": "hub-pw"},
             {"user": "acme", "password": "acme-pw",
              "permissions": worker_permissions("acme")}]
    server = NatsServer(tmp_path / "nats",
                        extra=f"authorization {{ users: {json.dumps(users)} }}").start()
    hub_url = f"nats://hub:hub-pw@127.0.0.1:{server.port}"
    worker_url = f"nats://acme:acme-pw@127.0.0.1:{server.port}"
    pb, inv, plugins = site_setup(tmp_path, {"p1": {"site": "acme"}, "p2": {"site": "acme"}},
                                  "echo ok")
    history_path = tmp_path / "hub.db"
    from upkeeper.store.history import History

    history = History(history_path)
    hub = Hub(hub_url, history, settings=SiteSettings(ack_wait=3, heartbeat=0.5)).start()
    worker = WorkerThread("acme", worker_url, tmp_path / "w", plugins=plugins)
    try:
        worker.start()
        run = run_playbook(pb, inv, plugins, history, remote=hub.remote(time.time() + 30))
        time.sleep(1.0)  # a heartbeat or two, and any late permission error
    finally:
        worker.stop()
        hub.close()
        server.stop()
    assert [r.status for r in run.results] == [Status.OK, Status.OK], run.results
    assert worker.worker.errors == []
    seen = history.query("SELECT site, worker FROM site_workers")
    assert [r["site"] for r in seen] == ["acme"]
