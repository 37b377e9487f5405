"""The nats-server fixture is real: JetStream answers on loopback, state survives restart."""

from __future__ import annotations

import asyncio

import nats

from tests.sites.natsserver import NatsServer


def test_jetstream_round_trip_survives_a_restart(nats_server: NatsServer) -> None:
    async def publish() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await js.add_stream(name="T", subjects=["t.>"])
        ack = await js.publish("t.x", b"hello", headers={"Nats-Msg-Id": "one"})
        dup = await js.publish("t.x", b"hello", headers={"Nats-Msg-Id": "one"})
        assert ack.seq == 1 and dup.duplicate
        await nc.close()

    async def read() -> bytes:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        msg = await js.get_msg("T", 1)
        await nc.close()
        return msg.data or b""

    asyncio.run(publish())
    nats_server.restart()
    assert asyncio.run(read()) == b"hello"
