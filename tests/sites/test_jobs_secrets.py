"""Guarantee 9: a site host's secret vars never travel in a job: the hub strips secret
literals, the worker fills them in from its own secrets; a planted canary password is
absent from the nats-server store after a run."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from nats.js.errors import NotFoundError
from pydantic import BaseModel

from tests.sites.jobhelpers import WorkerThread, site_setup, wait_for
from tests.sites.natsserver import NatsServer
from upkeeper import hookimpl
from upkeeper.checks import Check, CheckContext
from upkeeper.engine.playbook import Playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.inventory.loader import load_inventory
from upkeeper.models import Result, RunRecord, Status
from upkeeper.plugins import get_plugin_manager
from upkeeper.sites import subjects
from upkeeper.sites.execute import WorkerSecrets
from upkeeper.sites.hub import Hub
from upkeeper.sites.jobs import build_job, strip_secrets
from upkeeper.sites.streams import SiteSettings
from upkeeper.store.history import History

CANARY = "Canary-7f3a91c2-pw"


def store_contains(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_canary_password_resolved_at_worker_absent_from_store(
        nats_server: NatsServer, tmp_path: Path) -> None:
    pb, inv, plugins = site_setup(
        tmp_path, {"db1": {"site": "acme", "db_password": CANARY,
                           "backup": {"repo": "/srv", "repo_password": CANARY}}},
        f'printf %s "{{{{ db_password }}}}:{{{{ backup.repo_password }}}}" > {tmp_path}/seen'
        ' && echo secrets-resolved-at-worker')
    secrets = tmp_path / "secrets.yml"
    secrets.write_text(f"hosts:\n  db1:\n    db_password: {CANARY}\n"
                       f"    backup:\n      repo_password: {CANARY}\n")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=SiteSettings(ack_wait=3)).start()
    worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins,
                          secrets=WorkerSecrets(secrets, environ={}))
    runs: list[RunRecord] = []
    runner = threading.Thread(target=lambda: runs.append(run_playbook(
        pb, inv, plugins, history, remote=hub.remote(time.time() + 30))))
    try:
        runner.start()
        assert hub.js is not None
        js = hub.js

        def queued() -> int:
            try:
                return int(hub.call(js.stream_info(subjects.jobs_stream("acme"))).state.messages)
            except NotFoundError:
                return 0

        wait_for(queued, 20, "the job to be queued")
        queued_at_rest = store_contains(nats_server.store, CANARY.encode())
        worker.start()
        runner.join(30)
    finally:
        worker.stop()
        hub.close()
    assert queued_at_rest == []
    run = runs[0]
    assert [r.status for r in run.results] == [Status.OK], run.results
    assert "secrets-resolved-at-worker" in run.results[0].summary
    assert (tmp_path / "seen").read_text() == f"{CANARY}:{CANARY}"
    nats_server.stop()  # flush: the store is read as the server left it
    assert nats_server.store.is_dir()
    assert store_contains(nats_server.store, CANARY.encode()) == []


def test_secret_literals_stripped_templates_kept() -> None:
    stripped, paths = strip_secrets({
        "ansible_password": "x1", "restic_password": "{{ env.PW }}",
        "nested": {"api_token": "x2", "keep": 1}, "password_file": "/etc/pw"})
    assert stripped == {"restic_password": "{{ env.PW }}", "nested": {"keep": 1},
                        "password_file": "/etc/pw"}
    assert paths == [["ansible_password"], ["nested", "api_token"]]


class SecretParams(BaseModel):
    api_token: str
    out: str


class WritesToken(Check[SecretParams]):
    name = "test.writes_token"
    Params = SecretParams
    platforms = ("*",)

    def run(self, ctx: CheckContext[SecretParams]) -> Result:
        Path(ctx.params.out).write_text(ctx.params.api_token)
        return Result(Status.OK, "token used")


class TokenPlugin:
    @hookimpl
    def upkeeper_register_checks(self) -> list[type[Check[Any]]]:
        return [WritesToken]


def test_secret_literal_in_check_params_resolved_at_worker(nats_server: NatsServer,
                                                           tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    inv_path = tmp_path / "inventory.yml"
    inv_path.write_text("all:\n  hosts:\n    t1:\n      ansible_connection: local\n"
                        "      site: acme\n")
    plugins = get_plugin_manager(extra_plugins=[("token", TokenPlugin())])
    pb = Playbook.model_validate({"name": "tok", "hosts": "all", "checks": [
        {"check": "test.writes_token", "params": {"api_token": CANARY, "out": str(seen)}}]})
    job = build_job(pb, load_inventory([str(inv_path)]).hosts["t1"], "acme", "r1",
                    time.time() + 60, check_mode=False, force=False, allow_anytime=False,
                    has_actions=False)
    assert CANARY.encode() not in job.to_bytes()
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=SiteSettings(ack_wait=3)).start()
    worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins,
                          secrets=WorkerSecrets(None, environ={
                              "UPKEEPER_SECRET_API_TOKEN": CANARY}))
    try:
        worker.start()
        run = run_playbook(pb, load_inventory([str(inv_path)]), plugins, history,
                           remote=hub.remote(time.time() + 30))
    finally:
        worker.stop()
        hub.close()
    assert [r.status for r in run.results] == [Status.OK], run.results
    assert seen.read_text() == CANARY
    nats_server.stop()
    assert store_contains(nats_server.store, CANARY.encode()) == []
