"""The JetStream objects of the job flow, created idempotently by the hub: per site the
jobs stream and its shared durable pull consumer and the lease bucket, and the results
stream the hub consumes. Names come from :mod:`upkeeper.sites.subjects`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from upkeeper.sites import subjects

log = logging.getLogger("upkeeper.sites")
HUB_CONSUMER = "hub"
ENV_PREFIX = "UPKEEPER_SITES_"
DAY = 86400.0


@dataclass(frozen=True)
class SiteSettings:
    """Timing of the job flow (seconds). ``ack_wait`` is how long a job may go without an
    ack or ``in_progress`` before JetStream redelivers it; workers renew at a third of it.
    """

    ack_wait: float = 60.0
    max_deliver: int = 5
    duplicate_window: float = 2 * 3600.0
    job_max_age: float = 7 * DAY
    heartbeat: float = 10.0
    #: A worker unheard of this long is gone; a site with none live is offline.
    offline_after: float = 35.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SiteSettings:
        """Defaults, overridden by ``UPKEEPER_SITES_ACK_WAIT`` (and ``_MAX_DELIVER``,
        ``_HEARTBEAT``, ``_OFFLINE_AFTER``, ...), in seconds."""
        env = os.environ if environ is None else environ
        settings = cls()
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper(), "").strip()
            if not raw:
                continue
            try:
                value = int(raw) if f.type in ("int", int) else float(raw)
            except ValueError:
                log.warning("%s%s=%r is not a number: ignored", ENV_PREFIX, f.name.upper(), raw)
                continue
            if value > 0:
                settings = replace(settings, **{f.name: value})  # type: ignore[arg-type]
        return settings


async def ensure_site(js: JetStreamContext, site: str, settings: SiteSettings) -> None:
    """Create (or align) the site's jobs stream, consumer and lease bucket."""
    stream = subjects.jobs_stream(site)
    config = StreamConfig(
        name=stream, subjects=[subjects.jobs_subject(site)],
        retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
        max_age=settings.job_max_age, duplicate_window=settings.duplicate_window)
    try:
        await js.stream_info(stream)
        await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)
    consumer = ConsumerConfig(
        durable_name=subjects.CONSUMER, name=subjects.CONSUMER,
        ack_policy=AckPolicy.EXPLICIT, ack_wait=settings.ack_wait,
        max_deliver=settings.max_deliver, max_ack_pending=1000,
        filter_subject=subjects.jobs_subject(site))
    await js.add_consumer(stream, consumer)  # creating an identical one is a no-op
    bucket = subjects.lease_bucket(site)
    try:
        await js.key_value(bucket)
    except NotFoundError:
        await js.create_key_value(KeyValueConfig(
            bucket=bucket, history=1, ttl=settings.job_max_age + DAY,
            storage=StorageType.FILE))


async def ensure_results(js: JetStreamContext, settings: SiteSettings) -> None:
    """The results stream every site publishes into, and the hub's durable consumer."""
    config = StreamConfig(
        name=subjects.RESULTS_STREAM, subjects=[subjects.RESULTS_WILDCARD],
        retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE,
        max_age=settings.job_max_age, duplicate_window=settings.duplicate_window)
    try:
        await js.stream_info(subjects.RESULTS_STREAM)
        await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)
    await js.add_consumer(subjects.RESULTS_STREAM, ConsumerConfig(
        durable_name=HUB_CONSUMER, name=HUB_CONSUMER, ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0, max_ack_pending=10000))
