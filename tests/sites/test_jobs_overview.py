"""``site_overview`` reads the queue from the server: the number of queued jobs and the
oldest one's age, even when the hub's own records know nothing of them (jobs queued by
another hub process, a history restored from backup)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats

from tests.sites.natsserver import NatsServer
from upkeeper.sites import subjects
from upkeeper.sites.liveness import site_overview
from upkeeper.sites.streams import SiteSettings, ensure_site
from upkeeper.store.history import History


def test_oldest_queued_age_comes_from_the_server(nats_server: NatsServer,
                                                 tmp_path: Path) -> None:
    history = History(tmp_path / "hub.db")

    async def scenario() -> tuple[float, float, list[dict[str, object]]]:
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            await ensure_site(js, "acme", SiteSettings(ack_wait=1.0))
            before = time.time()
            for n in range(3):
                await js.publish(subjects.jobs_subject("acme"), b"{}",
                                 headers={"Nats-Msg-Id": f"slot-1/h{n}"})
            after = time.time()
            found = await site_overview(history, js, sites={"acme"})
            return before, after, [st.to_dict() for st in found]
        finally:
            await nc.close()

    before, after, found = asyncio.run(scenario())
    read_at = time.time()
    (acme,) = found
    assert acme["queued"] == 3
    age = acme["oldest_queued_age_s"]
    assert isinstance(age, float), "the oldest queued job's age was not read from the server"
    # The first job was stored between `before` and `after` (same clock, 1 s slack for the
    # server's own time stamp).
    stored = read_at - age
    assert before - 1.0 <= stored <= after + 1.0 + (read_at - after)
    history.close()
