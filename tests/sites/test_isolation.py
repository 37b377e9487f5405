"""Guarantee 2 (sites are isolated) and 7 (onboarding), against a real nats-server
configured by ``upkeeper hub nats-config`` and credentials from ``upkeeper sites add``.

Site alpha's credentials are refused on every subject of site bravo and on the hub's
own (results stream, JetStream API, other inboxes), each refusal arriving as a
permission error through ``error_cb``; and the same credentials are enough for
everything a worker does on its own subjects, so the list is complete, not just strict.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.sites.authhub import AuthHub, Worker, cli, run, start_auth_hub
from upkeeper.sites import subjects as s

A, B = "alpha", "bravo"


@pytest.fixture
def auth_hub(tmp_path: Path) -> Iterator[AuthHub]:
    hub = start_auth_hub(tmp_path / "hub")
    hub.add_site(A)
    hub.add_site(B)
    yield hub
    hub.server.stop()


def denied_publishes(site: str, other: str) -> list[str]:
    """Subjects a worker of ``site`` must not publish to."""
    stream, bucket = s.jobs_stream(other), s.lease_bucket(other)
    return [
        s.jobs_subject(other), s.results_subject(other), s.heartbeat_subject(other),
        s.jobs_subject(site),  # a worker never queues jobs, even for itself
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{s.CONSUMER}",
        f"$JS.API.CONSUMER.INFO.{stream}.{s.CONSUMER}",
        f"$JS.ACK.{stream}.{s.CONSUMER}.1.1.1.1700000000000000000.0",
        f"$KV.{bucket}.job-1",
        f"$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.job-1",
        f"$JS.API.STREAM.MSG.GET.KV_{bucket}",
        f"$JS.API.STREAM.INFO.{s.RESULTS_STREAM}",
        f"$JS.API.STREAM.MSG.GET.{s.RESULTS_STREAM}",
        f"$JS.API.DIRECT.GET.{s.RESULTS_STREAM}",
        f"$JS.API.CONSUMER.CREATE.{s.RESULTS_STREAM}",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.STREAM.INFO.{s.jobs_stream(site)}",
        f"$JS.API.STREAM.UPDATE.{s.jobs_stream(site)}",
        f"$JS.API.STREAM.PURGE.{s.jobs_stream(site)}",  # nor touch its own queue's shape
        f"$JS.API.STREAM.MSG.DELETE.{s.jobs_stream(site)}",
        f"$JS.API.CONSUMER.DELETE.{s.jobs_stream(site)}.{s.CONSUMER}",
        f"$JS.API.STREAM.DELETE.KV_{s.lease_bucket(site)}",
        "$JS.API.STREAM.LIST", "$JS.API.INFO", "$SYS.REQ.SERVER.PING",
        f"{s.inbox_prefix(other)}.reply",
    ]


def denied_subscribes(site: str, other: str) -> list[str]:
    stream, bucket = s.jobs_stream(other), s.lease_bucket(other)
    return [
        s.jobs_subject(other), s.results_subject(other), s.heartbeat_subject(other),
        s.results_subject(site), s.RESULTS_WILDCARD, s.HEARTBEAT_WILDCARD, "upk.>", ">",
        "_INBOX.>", f"{s.inbox_prefix(other)}.>", f"$JS.ACK.{stream}.>",
        f"$KV.{bucket}.>", "$JS.API.>", "$JS.EVENT.>",
    ]


async def _expect_denial(w: Worker, subject: str) -> str | None:
    """None if a permission error naming ``subject`` arrives, else what happened."""
    want = f'"{subject}"'.lower()  # nats-py lower-cases the server's message
    for _ in range(250):
        if any(want in err.lower() for err in w.permission_errors()):
            return None
        await asyncio.sleep(0.02)
    return f"{subject}: no permission error (errors: {w.permission_errors()[-3:]})"


async def _seed_hub(hub: AuthHub) -> Client:
    """The hub queues a job for bravo carrying a canary secret and records a result."""
    nc = await hub.hub_client()
    js = nc.jetstream()
    await js.publish(s.jobs_subject(B), b'{"vars": {"password": "canary-7f3a"}}',
                     headers={"Nats-Msg-Id": "slot-1:host-b"})
    await js.publish(s.results_subject(B), b'{"summary": "bravo result"}')
    return nc


def test_site_a_is_refused_everything_of_site_b_with_a_permission_error(
        auth_hub: AuthHub) -> None:
    async def scenario() -> None:
        hub_nc = await _seed_hub(auth_hub)
        alpha = await auth_hub.worker(A)
        received: list[Msg] = []

        async def got(msg: Msg) -> None:
            received.append(msg)

        missing = []
        for subject in denied_publishes(A, B):
            await alpha.nc.publish(subject, b"{}", reply=f"{s.inbox_prefix(A)}.r1")
            await alpha.nc.flush(timeout=5)
            missing.append(await _expect_denial(alpha, subject))
        for subject in denied_subscribes(A, B):
            await alpha.nc.subscribe(subject, cb=got)
            await alpha.nc.flush(timeout=5)
            missing.append(await _expect_denial(alpha, subject))
        assert [m for m in missing if m] == []
        assert alpha.nc.is_connected  # denials do not cost the worker its connection
        await asyncio.sleep(0.2)
        assert received == []  # nothing of bravo's (nor the hub's) ever reached alpha
        js = hub_nc.jetstream()
        jobs = await js.stream_info(s.jobs_stream(B))
        assert jobs.state.messages == 1  # bravo's job untouched: alpha's NEXT/ACK did nothing
        await alpha.nc.close()
        await hub_nc.close()

    run(scenario())


async def worker_cycle(hub: AuthHub, site: str, hub_nc: Client,
                       url: str | None = None) -> Worker:
    """Everything a worker does, with its own credentials only: bind to the shared pull
    consumer, pull one job, extend it, take and renew the lease in the KV bucket, publish
    the result and get JetStream's ack, heartbeat, ack the job."""
    hub_js = hub_nc.jetstream()
    beats: list[Msg] = []

    async def beat(msg: Msg) -> None:
        beats.append(msg)

    hb_sub = await hub_nc.subscribe(s.heartbeat_subject(site), cb=beat)
    await hub_nc.flush()
    await hub_js.publish(s.jobs_subject(site), json.dumps({"job": f"{site}-1"}).encode(),
                         headers={"Nats-Msg-Id": f"slot-1:{site}-host"})
    w = await hub.worker(site, url=url)
    js = w.nc.jetstream()
    sub = await js.pull_subscribe_bind(durable=s.CONSUMER, stream=s.jobs_stream(site))
    info = await sub.consumer_info()
    assert info.num_pending == 1
    (msg,) = await sub.fetch(1, timeout=5)
    assert json.loads(msg.data)["job"] == f"{site}-1"
    await msg.in_progress()
    kv = await js.key_value(s.lease_bucket(site))
    rev = await kv.create("job-1", b"worker-1")
    rev2 = await kv.update("job-1", b"worker-1", last=rev)
    assert rev2 > rev and (await kv.get("job-1")).revision == rev2
    ack = await js.publish(s.results_subject(site),
                           json.dumps({"fence": rev2, "status": "OK"}).encode(),
                           headers={"Nats-Msg-Id": f"slot-1:{site}-host:r"})
    assert ack.stream == s.RESULTS_STREAM and not ack.duplicate
    await w.nc.publish(s.heartbeat_subject(site), b'{"worker": "w1"}')
    await msg.ack_sync(timeout=5)
    await w.nc.flush(timeout=5)
    for _ in range(250):
        if beats:
            break
        await asyncio.sleep(0.02)
    assert beats, "the hub got no heartbeat"
    await hb_sub.unsubscribe()
    assert (await hub_js.stream_info(s.jobs_stream(site))).state.messages == 0  # acked
    got = await hub_js.get_last_msg(s.RESULTS_STREAM, s.results_subject(site))
    assert json.loads(got.data or b"{}")["fence"] == rev2
    assert w.errors == [], w.errors  # not one denial on its own subjects
    return w


def test_a_worker_can_do_everything_it_needs_on_its_own_subjects(auth_hub: AuthHub) -> None:
    async def scenario() -> None:
        hub_nc = await auth_hub.hub_client()
        w = await worker_cycle(auth_hub, A, hub_nc)
        await w.nc.close()
        await hub_nc.close()

    run(scenario())


def test_adding_a_site_restarts_nothing_and_disconnects_no_worker(auth_hub: AuthHub) -> None:
    """Guarantee 7: alpha keeps working on one connection while charlie is added (keys,
    stream, consumer, bucket) and runs a job; the server process is the same."""
    pid = auth_hub.server.proc.pid if auth_hub.server.proc else None

    async def scenario() -> None:
        hub_nc = await auth_hub.hub_client()
        alpha = await worker_cycle(auth_hub, A, hub_nc)
        before = {c["cid"] for c in await auth_hub.connz() if c.get("name") != "connz"}
        stop = asyncio.Event()
        pings = 0

        async def keep_busy() -> None:
            nonlocal pings
            while not stop.is_set():
                await alpha.nc.publish(s.heartbeat_subject(A), b"{}")
                await alpha.nc.flush(timeout=5)
                pings += 1
                await asyncio.sleep(0.01)

        busy = asyncio.create_task(keep_busy())
        await asyncio.to_thread(cli, "sites", "add", "charlie", "--state-dir",
                                str(auth_hub.state_dir))
        charlie = await worker_cycle(auth_hub, "charlie", hub_nc)
        stop.set()
        await busy
        after = {c["cid"] for c in await auth_hub.connz()}
        assert alpha.disconnects == 0 and alpha.nc.is_connected
        assert alpha.nc.stats["reconnects"] == 0 and alpha.errors == []
        assert before <= after  # alpha's (and the hub's) connections are the same ones
        assert pings > 0
        await charlie.nc.close()
        await alpha.nc.close()
        await hub_nc.close()

    run(scenario())
    assert auth_hub.server.proc is not None and auth_hub.server.proc.pid == pid
    assert auth_hub.server.proc.poll() is None
    assert "Reloaded" not in auth_hub.server.log.read_text()
    assert os.path.exists(auth_hub.creds("charlie"))


def test_a_worker_over_websocket_on_the_tls_port_does_the_same(tmp_path: Path) -> None:
    """Sites whose firewall lets only HTTPS out: the same credentials over wss://."""
    pytest.importorskip("aiohttp", reason="nats-py's WebSocket transport needs aiohttp:"
                        " pip install 'upkeeper[websocket]'")
    hub = start_auth_hub(tmp_path / "hub", websocket=True)
    try:
        hub.add_site(A)
        hub.add_site(B)

        async def scenario() -> None:
            hub_nc = await hub.hub_client()
            w = await worker_cycle(hub, A, hub_nc, url=hub.ws_url)
            await w.nc.publish(s.jobs_subject(B), b"{}")
            await w.nc.flush(timeout=5)
            assert await _expect_denial(w, s.jobs_subject(B)) is None
            await w.nc.close()
            await hub_nc.close()

        run(scenario())
    finally:
        hub.server.stop()
