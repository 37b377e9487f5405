"""The hub side of the job flow: hosts with a ``site`` var become jobs on their site's
stream, and the results workers send back land in the run as if run locally.

:class:`Hub` owns one NATS connection on an event loop thread, ingests results in batches
(one SQLite transaction per batch, the first result per job wins, later ones are dropped),
records worker heartbeats and dead letters. :meth:`Hub.remote` gives the runner its
:class:`~upkeeper.engine.runner.RemoteHosts` seam for one run, with the run's deadline:
jobs not answered by then are recorded UNKNOWN ("expired", or "site offline" when no
worker of the site was heard), and a worker never runs a job past it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from upkeeper.remediation.audit import AuditLog
from upkeeper.sites import store, subjects
from upkeeper.sites.credentials_server import tls_options
from upkeeper.sites.fixes import ingest_remediation
from upkeeper.sites.jobs import EXPIRED, JobResult
from upkeeper.sites.jobs import job_id as make_job_id
from upkeeper.sites.siterun import Pending, SiteRun
from upkeeper.sites.streams import HUB_CONSUMER, SiteSettings, ensure_results, ensure_site
from upkeeper.store.history import History

log = logging.getLogger("upkeeper.sites")
T = TypeVar("T")
BATCH = 500
INGEST_FETCH = 1.0
MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.*.*"


class HubError(RuntimeError):
    """The hub cannot reach its NATS server (the message names the URL)."""


class Hub:
    def __init__(self, url: str, history: History, *, creds: str | None = None,
                 ca_file: str | Path | None = None,
                 settings: SiteSettings | None = None) -> None:
        self.url, self.history, self.creds, self.ca_file = url, history, creds, ca_file
        self.settings = settings or SiteSettings()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="upkeeper-hub")
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.pending: dict[str, Pending] = {}
        self.lock = threading.Lock()
        self.last_seen: dict[str, float] = {}
        self._beats: dict[tuple[str, str], float] = {}
        self._sites_ready: set[str] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self.last_error = ""
        self.stats = {"ingested": 0, "duplicates": 0, "late": 0, "dead": 0, "restarts": 0}
        self._ingest_beat = time.monotonic()
        self._audit: AuditLog | None = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, connect_timeout: float = 10.0) -> Hub:
        store.ensure_tables(self.history)
        for row in self.history.query(
                "SELECT site, max(last_seen) AS seen FROM site_workers GROUP BY site"):
            self.last_seen[row["site"]] = float(row["seen"])
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self._connect(), self.loop)
        try:
            future.result(connect_timeout)
        except Exception as exc:
            future.cancel()
            why = self.last_error or f"{type(exc).__name__} {exc}".strip()
            self.close()
            raise HubError(f"hub {self.url}: cannot connect to NATS: {why}") from exc
        return self

    async def _connect(self) -> None:
        async def error(exc: Exception) -> None:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("hub NATS connection: %s", self.last_error)

        self.nc = await nats.connect(self.url, user_credentials=self.creds, error_cb=error,
                                     **tls_options(self.url, self.ca_file),
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                     ping_interval=5, max_outstanding_pings=2,
                                     name="upkeeper-hub")
        self.js = self.nc.jetstream()
        await ensure_results(self.js, self.settings)
        await self.nc.subscribe(subjects.HEARTBEAT_WILDCARD, cb=self._on_heartbeat)
        await self.nc.subscribe(MAX_DELIVERIES, cb=self._on_max_deliveries)
        self._tasks = [asyncio.create_task(self._watch_ingest()),
                       asyncio.create_task(self._flush_beats_loop())]

    def close(self) -> None:
        async def stop() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.nc is not None:
                await self.nc.close()

        if self.thread.is_alive():
            try:
                self.call(stop(), 10)
            except Exception as exc:
                log.warning("closing the hub connection: %s", exc)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        self._flush_beats()

    def ensure_site(self, site: str) -> None:
        if site not in self._sites_ready:
            assert self.js is not None
            self.call(ensure_site(self.js, site, self.settings))
            self._sites_ready.add(site)

    def offline(self, site: str, now: float | None = None) -> bool:
        seen = self.last_seen.get(site)
        return seen is None or (now or time.time()) - seen > self.settings.offline_after

    def remote(self, deadline: float) -> SiteRun:
        """The seam for one run whose site jobs are good until ``deadline`` (epoch)."""
        return SiteRun(self, deadline)

    async def _on_heartbeat(self, msg: Msg) -> None:
        site = msg.subject.rsplit(".", 1)[-1]
        try:
            worker = str(json.loads(msg.data).get("worker", "?"))[:200]
        except (ValueError, AttributeError):
            return
        now = time.time()
        self.last_seen[site] = now
        self._beats[(site, worker)] = now

    async def _flush_beats_loop(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            await asyncio.to_thread(self._flush_beats)

    def _flush_beats(self) -> None:
        beats, self._beats = self._beats, {}
        if beats:
            try:
                store.saw_workers(self.history, [(s, w, t) for (s, w), t in beats.items()])
            except Exception as exc:
                log.error("recording worker heartbeats: %s", exc)

    async def _watch_ingest(self) -> None:
        """Recreate the ingest loop when it goes silent (a pull request that hangs after
        a reconnect, nats.py #504)."""
        task = asyncio.create_task(self._ingest_loop())
        try:
            while True:
                await asyncio.sleep(INGEST_FETCH)
                if task.done() or time.monotonic() - self._ingest_beat > 5 * INGEST_FETCH:
                    log.warning("result ingestion went silent: restarting it")
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    self.stats["restarts"] += 1
                    task = asyncio.create_task(self._ingest_loop())
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _ingest_loop(self) -> None:
        assert self.js is not None
        sub = None
        while True:
            self._ingest_beat = time.monotonic()
            try:
                if sub is None:
                    sub = await self.js.pull_subscribe_bind(durable=HUB_CONSUMER,
                                                            stream=subjects.RESULTS_STREAM)
                msgs = await sub.fetch(BATCH, timeout=INGEST_FETCH)
            except nats.errors.TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # server restarting: try again
                log.debug("results fetch: %s", exc)
                await asyncio.sleep(0.5)
                continue
            try:
                await asyncio.to_thread(self.ingest, [(m.subject, m.data) for m in msgs])
            except Exception:
                log.exception("storing %d results failed: they will be redelivered", len(msgs))
                continue
            for m in msgs:
                try:
                    await m.ack()
                except Exception as exc:
                    log.debug("ack of a result: %s", exc)

    def ingest(self, messages: Sequence[tuple[str, bytes]]) -> int:
        """Store a batch of worker results (subject, payload) in one transaction; the
        number stored. A result counts only for a job of the site it came from: a site's
        credentials let it publish on its own results subject only, so a worker cannot
        answer (or spoil) another site's jobs."""
        stored = 0
        with self.history.transaction():  # one COMMIT for the batch
            for subject, data in messages:
                site = subject.rsplit(".", 1)[-1]
                try:
                    result = JobResult.from_bytes(data)
                    decoded = result.decoded()
                except (ValueError, TypeError, KeyError) as exc:
                    log.error("dropping a malformed result from site %s: %s", site, exc)
                    continue
                if result.site != site:
                    log.error("dropping a result from site %s for site %s's job %s", site,
                              result.site, result.job_id)
                    continue
                expired = bool(decoded) and all(r.summary.startswith(EXPIRED)
                                                for _, r in decoded)
                if not store.finish_job(self.history, result.job_id, site,
                                        store.EXPIRED if expired else store.DONE,
                                        result.token, result.worker):
                    self.stats["duplicates"] += 1
                    continue
                with self.lock:
                    pending = self.pending.pop(result.job_id, None)
                stored += 1
                remediation = result.remediation if isinstance(result.remediation,
                                                               dict) else {}
                if remediation and result.job_id != make_job_id(result.run_id, result.host):
                    log.error("site %s: dropped fix records of job %s naming host %s",
                              site, result.job_id, result.host)
                    remediation = {}
                if remediation:  # the first result only: a fix is audited once
                    if self._audit is None:
                        self._audit = AuditLog(self.history)
                    ingest_remediation(self.history, self._audit, site=site,
                                       worker=result.worker, host=result.host,
                                       remediation=remediation)
                if pending is None:  # its run has closed (hub restarted): keep it anyway
                    self.stats["late"] += 1
                    for _, r in decoded:
                        self.history.add_result(result.run_id, r)
                    continue
                pending.run.deliver(pending, decoded,
                                    list(remediation.get("outcomes") or []))
        self.stats["ingested"] += stored
        return stored

    async def _on_max_deliveries(self, msg: Msg) -> None:
        assert self.js is not None
        try:
            event = json.loads(msg.data)
            stream, seq = str(event["stream"]), int(event["stream_seq"])
            job = json.loads((await self.js.get_msg(stream, seq)).data or b"{}")
            job_id = str(job["job_id"])
        except Exception as exc:
            log.error("a job failed max_deliver times but cannot be read: %s", exc)
            return
        where = await asyncio.to_thread(store.dead_letter, self.history, job_id,
                                        int(event.get("deliveries", 0)))
        try:
            await self.js.delete_msg(stream, seq)
        except Exception as exc:
            log.debug("removing dead letter %s: %s", job_id, exc)
        if where is None:
            return
        self.stats["dead"] += 1
        log.error("job %s (site %s, host %s) failed %s deliveries: dead letter", job_id,
                  where[0], where[1], event.get("deliveries"))
        with self.lock:
            pending = self.pending.pop(job_id, None)
        if pending is not None:
            pending.run.fail(pending, f"dead letter: the job failed on "
                                      f"{event.get('deliveries')} deliveries at site "
                                      f"{pending.site}")
