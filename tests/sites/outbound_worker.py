"""A worker-side client for the outbound-only tests, run as its own process (possibly in
its own network namespace): connects to the hub with a site's credentials, runs one job
cycle (pull, in_progress, lease, result with JetStream ack, heartbeat, ack), prints
``done``, then holds its connection until stdin closes so the test can look at its
sockets.

usage: python -m tests.sites.outbound_worker URL CREDS CA SITE
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time

import nats

from upkeeper.sites import subjects as s


async def main(url: str, creds: str, ca: str, site: str) -> int:
    errors: list[str] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc))

    ctx = ssl.create_default_context(cafile=ca)
    deadline = time.monotonic() + 30
    while True:  # the way out (relay, NAT) may come up after this process starts
        try:
            nc = await nats.connect(url, user_credentials=creds, tls=ctx,
                                    inbox_prefix=s.inbox_prefix(site), error_cb=error_cb,
                                    allow_reconnect=False, max_reconnect_attempts=1,
                                    reconnect_time_wait=0.1, connect_timeout=2)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind(durable=s.CONSUMER, stream=s.jobs_stream(site))
    (msg,) = await sub.fetch(1, timeout=10)
    await msg.in_progress()
    kv = await js.key_value(s.lease_bucket(site))
    rev = await kv.create("job-1", b"outbound-worker")
    await js.publish(s.results_subject(site), json.dumps({"fence": rev}).encode())
    await nc.publish(s.heartbeat_subject(site), b"{}")
    await msg.ack_sync(timeout=5)
    await nc.flush(timeout=5)
    print("done" if not errors else f"errors: {errors}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await nc.close()
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:5])))
