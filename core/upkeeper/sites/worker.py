"""``upkeeper worker``: inside a client network, dial out to the hub's NATS server, pull
that site's jobs one at a time per loop, run each with the ordinary engine, and send the
results back, each job taking effect once (see :mod:`upkeeper.sites.lease`).

Per job: claim the lease (its revision is the fencing token), run the checks in a thread
while a keep-alive sends ``in_progress`` and renews the lease every third of ``ack_wait``
(guarantee 6), write the result to the outbox, mark the lease done *with* the result (a
worker that later sees the job again resends that result instead of running it), publish
it, ack. A watchdog recreates pull loops that went silent (nats.py #504).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from upkeeper.plugins import PluginSystem
from upkeeper.sites import lease, subjects
from upkeeper.sites.credentials_server import tls_options
from upkeeper.sites.execute import WorkerSecrets, run_job
from upkeeper.sites.jobs import EXPIRED, Job, JobResult, lease_key, unknown_results
from upkeeper.sites.outbox import Outbox
from upkeeper.store.history import History

log = logging.getLogger("upkeeper.worker")


@dataclass
class WorkerOptions:
    concurrency: int = 4
    fetch_timeout: float = 5.0
    heartbeat: float = 10.0
    #: Test seam: sleep this long between sending a result and acking it (a stalled worker).
    stall_before_ack: float = 0.0


def result_msg_id(result: JobResult) -> str:
    return f"{result.job_id}#{result.token}"


class Worker:
    def __init__(self, site: str, url: str, plugins: PluginSystem, state_dir: Path, *,
                 creds: str | None = None, ca_file: str | Path | None = None,
                 secrets: WorkerSecrets | None = None,
                 options: WorkerOptions | None = None, name: str | None = None) -> None:
        self.site = subjects.check_site(site)
        self.url, self.creds, self.plugins = url, creds, plugins
        self.ca_file = ca_file
        self.opts = options or WorkerOptions()
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.secrets = secrets or WorkerSecrets()
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.history = History(state_dir / "worker.db")
        self.outbox = Outbox(state_dir / "outbox")
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.kv: KeyValue | None = None
        self.ack_wait = 30.0
        self.beats: dict[int, float] = {}
        self.busy: set[int] = set()
        self.generation: dict[int, int] = {}
        self.stats = {"jobs": 0, "ran": 0, "resent": 0, "expired": 0, "restarts": 0}
        self.errors: list[str] = []

    def _error(self, where: str) -> Callable[[Exception], Any]:
        async def report(exc: Exception) -> None:
            # Permission denials arrive here (guarantee 2): say so, do not time out quietly.
            text = f"{where}: {type(exc).__name__}: {exc}"
            self.errors.append(text)
            log.error("%s", text)
        return report

    async def connect(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.nc = await nats.connect(
                    self.url, user_credentials=self.creds,
                    **tls_options(self.url, self.ca_file),
                    inbox_prefix=subjects.inbox_prefix(self.site),
                    error_cb=self._error("nats"), max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5, connect_timeout=5, ping_interval=5,
                    max_outstanding_pings=2, name=f"upkeeper-worker {self.site} {self.name}")
                self.js = self.nc.jetstream()
                self.kv = await self.js.key_value(subjects.lease_bucket(self.site))
                info = await self.js.consumer_info(subjects.jobs_stream(self.site),
                                                   subjects.CONSUMER)
                self.ack_wait = float(info.config.ack_wait or 30.0)
                return
            except Exception as exc:  # hub down or site not set up yet: keep dialling
                log.warning("cannot reach the hub at %s yet: %s", self.url, exc)
                if self.nc is not None:
                    await self.nc.close()
                    self.nc = None
                await _wait(stop, 1.0)

    async def run(self, stop: asyncio.Event) -> None:
        # Jobs run in threads: as many as pull loops (the default pool has cores + 4).
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(self.opts.concurrency, thread_name_prefix="upkeeper-job"))
        await self.connect(stop)
        if stop.is_set():
            return
        loops = {i: asyncio.create_task(self._loop(i, stop))
                 for i in range(self.opts.concurrency)}
        helpers = [asyncio.create_task(self._heartbeat(stop)),
                   asyncio.create_task(self._flush_outbox(stop))]
        try:
            while not stop.is_set():
                await _wait(stop, self.opts.fetch_timeout)
                silent = self.opts.fetch_timeout * 3
                for i, task in list(loops.items()):
                    quiet = time.monotonic() - self.beats.get(i, time.monotonic())
                    if task.done() or (i not in self.busy and quiet > silent):
                        log.warning("pull loop %d silent for %.0fs: recreating it", i, quiet)
                        task.cancel()
                        self.stats["restarts"] += 1
                        self.generation[i] = self.generation.get(i, 0) + 1
                        loops[i] = asyncio.create_task(self._loop(i, stop))
        finally:
            for task in [*loops.values(), *helpers]:
                task.cancel()
            await asyncio.gather(*loops.values(), *helpers, return_exceptions=True)
            if self.nc is not None:
                await self.nc.close()
            self.history.close()

    async def _loop(self, i: int, stop: asyncio.Event) -> None:
        assert self.js is not None
        self.beats[i] = time.monotonic()
        sub = None
        mine = self.generation.get(i, 0)
        # A replaced loop also ends by its generation: a cancellation can be swallowed.
        while not stop.is_set() and self.generation.get(i, 0) == mine:
            self.beats[i] = time.monotonic()
            try:
                if sub is None:
                    sub = await self.js.pull_subscribe_bind(
                        durable=subjects.CONSUMER, stream=subjects.jobs_stream(self.site))
                msgs = await sub.fetch(1, timeout=self.opts.fetch_timeout)
            except nats.errors.TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("pull loop %d: %s", i, exc)
                await _wait(stop, 0.5)
                continue
            for msg in msgs:
                self.busy.add(i)
                try:
                    await self.handle(msg)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("job failed in the worker; it will be redelivered")
                finally:
                    self.busy.discard(i)
                    self.beats[i] = time.monotonic()

    async def handle(self, msg: Msg) -> None:
        assert self.kv is not None
        try:
            job = Job.from_bytes(msg.data)
        except (ValueError, TypeError) as exc:
            log.error("dropping a message that is not a job: %s", exc)
            await msg.term()
            return
        self.stats["jobs"] += 1
        key = lease_key(job.job_id)
        claim = await lease.claim(self.kv, key, self.name, self.ack_wait,
                                  has_actions=job.has_actions)
        while claim.state == "held":  # another worker is on it: wait out its lease
            await _safe(msg.in_progress())
            await asyncio.sleep(max(0.05, min(claim.until - time.time(), self.ack_wait / 3)))
            claim = await lease.claim(self.kv, key, self.name, self.ack_wait,
                                      has_actions=job.has_actions)
        if claim.state == "done":
            self.stats["resent"] += 1
            if claim.result:
                await self._send(JobResult.from_bytes(claim.result.encode()))
            await self._ack(msg)
            return
        results: list[dict[str, Any]] | None
        remediation: dict[str, Any] = {}
        if claim.state == "orphaned":
            results = unknown_results(job, "a worker was lost while this job's actions ran: "
                                           "not run again (check the host)")
        elif job.expired():
            self.stats["expired"] += 1
            results = unknown_results(job, f"{EXPIRED}: not run, its deadline passed before "
                                           f"a worker of site {job.site} got it")
        else:
            ran = await self._run(job, msg, key, claim)
            if ran is None:
                return  # fenced: the worker that took the job over reports it
            results, remediation = ran
        result = JobResult(job.job_id, job.run_id, job.site, job.host, claim.revision,
                           self.name, results, remediation)
        entry = json.dumps({"key": key, "revision": claim.revision, "nonce": claim.nonce,
                            "result": result.to_bytes().decode()}).encode()
        path = self.outbox.put(result_msg_id(result), entry)
        if not await self._finish(key, claim, result, path):
            return  # fenced, or kept in the outbox until the server is back
        if self.opts.stall_before_ack:
            await asyncio.sleep(self.opts.stall_before_ack)
        await self._ack(msg)

    async def _finish(self, key: str, claim: lease.Claim, result: JobResult,
                      path: Path) -> bool:
        """Mark the lease done with the result, send it, drop it from the outbox. False
        when the lease was taken over (result dropped) or the server is unreachable (the
        result waits in the outbox; the job's redelivery finds the lease done later)."""
        assert self.kv is not None
        try:
            await lease.complete(self.kv, key, self.name, claim, result.to_bytes().decode())
        except lease.Fenced:
            log.warning("job %s was taken over while it ran: result dropped", result.job_id)
            self.outbox.remove(path)
            return False
        except Exception as exc:
            log.warning("result of %s kept in the outbox: %s", result.job_id, exc)
            return False
        if not await self._send(result):
            return False
        self.outbox.remove(path)
        return True

    async def _run(self, job: Job, msg: Msg, key: str, claim: lease.Claim
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
        assert self.kv is not None
        kv = self.kv
        fenced, running = False, True

        async def keep_alive() -> None:
            # Ends by the flag, not only by cancel: asyncio.wait_for (inside nats.py) may
            # swallow a cancellation on Python < 3.12, which left a zombie renewing the
            # lease and sending in_progress for ever while the job's result waited on it.
            nonlocal fenced
            while running:
                await asyncio.sleep(self.ack_wait / 3)
                if not running:
                    return
                await _safe(msg.in_progress())
                try:
                    await lease.renew(kv, key, self.name, claim, self.ack_wait)
                except lease.Fenced:
                    fenced = True
                    return
                except Exception as exc:  # server away: renew on the next beat
                    log.debug("renewing the lease of %s: %s", job.job_id, exc)

        alive = asyncio.create_task(keep_alive())
        self.stats["ran"] += 1
        try:
            results = await asyncio.to_thread(
                run_job, job, self.plugins, self.history, self.secrets,
                f"{job.run_id}@{self.name}#{claim.revision}", self.name)
        finally:
            running = False
            alive.cancel()
            await asyncio.wait({alive}, timeout=10)
        return None if fenced else results

    async def _send(self, result: JobResult) -> bool:
        assert self.js is not None
        try:
            await self.js.publish(subjects.results_subject(self.site), result.to_bytes(),
                                  headers={"Nats-Msg-Id": result_msg_id(result)}, timeout=5)
            return True
        except Exception as exc:  # kept in the outbox, sent by _flush_outbox
            log.warning("result of %s kept in the outbox: %s", result.job_id, exc)
            return False

    async def _ack(self, msg: Msg) -> None:
        try:
            await msg.ack_sync(timeout=5)
        except Exception as exc:  # redelivered later: the lease says done, result resent
            log.warning("ack failed: %s", exc)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        assert self.nc is not None
        while not stop.is_set():
            body = {"worker": self.name, "site": self.site, "ts": time.time(),
                    "busy": len(self.busy), "outbox": len(self.outbox)}
            await _safe(self.nc.publish(subjects.heartbeat_subject(self.site),
                                        json.dumps(body).encode()))
            await _wait(stop, self.opts.heartbeat)

    async def _flush_outbox(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _wait(stop, 2.0)
            for path, data in list(self.outbox.pending()):
                try:
                    entry = json.loads(data)
                    result = JobResult.from_bytes(entry["result"].encode())
                    key = str(entry["key"])
                    claim = lease.Claim("mine", int(entry["revision"]),
                                        nonce=str(entry.get("nonce", "")))
                except (ValueError, TypeError, KeyError):
                    log.error("%s: not an outbox entry, removed", path)
                    self.outbox.remove(path)
                    continue
                assert self.kv is not None
                try:
                    await lease.complete(self.kv, key, self.name, claim,
                                         result.to_bytes().decode())
                except lease.Fenced:
                    pass  # done already (or taken over): the hub keeps the first result
                except Exception:
                    break  # still unreachable
                if not await self._send(result):
                    break
                self.outbox.remove(path)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _safe(coro: Any) -> None:
    try:
        await coro
    except Exception as exc:
        log.debug("ignored while the connection recovers: %s", exc)
