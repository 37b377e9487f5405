"""The job lease on a real KV bucket: claim, hold, take over, complete, fencing, and a
write whose answer was lost (server restart) recognised as the claim's own."""

from __future__ import annotations

import asyncio
import json
import time

import nats
import pytest
from nats.js.api import KeyValueConfig

from tests.sites.natsserver import NatsServer
from upkeeper.sites import lease


def test_lease_claims_fences_and_survives_lost_answers(nats_server: NatsServer) -> None:
    async def go() -> None:
        nc = await nats.connect(nats_server.url)
        kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket="t", history=1))
        mine = await lease.claim(kv, "job.a", "w1", 30, has_actions=False)
        assert mine.state == "mine"
        held = await lease.claim(kv, "job.a", "w2", 30, has_actions=False)
        assert held.state == "held" and held.until > time.time()
        # A renew reached the server but its answer was lost: the revision moved on.
        entry = await kv.get("job.a")
        await kv.update("job.a", entry.value or b"", last=entry.revision)
        await lease.renew(kv, "job.a", "w1", mine, 30)  # still ours
        await lease.complete(kv, "job.a", "w1", mine, '{"r": 1}')
        done = await lease.claim(kv, "job.a", "w2", 30, has_actions=False)
        assert done.state == "done" and done.result == '{"r": 1}'

        first = await lease.claim(kv, "job.b", "w1", 0.2, has_actions=True)
        await asyncio.sleep(0.3)  # w1 went silent: its lease runs out
        taken = await lease.claim(kv, "job.b", "w2", 30, has_actions=True)
        assert taken.state == "orphaned"  # an action is never re-run
        with pytest.raises(lease.Fenced):
            await lease.complete(kv, "job.b", "w1", first, "late")
        body = json.loads((await kv.get("job.b")).value or b"{}")
        assert body["worker"] == "w2" and body["state"] == "running"
        await nc.close()

    asyncio.run(go())
