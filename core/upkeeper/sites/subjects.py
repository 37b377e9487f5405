"""The NATS names of a site: one contract shared by the hub, the worker and the
credentials/permissions writer, so a worker's permissions list exactly what it uses.

Per site ``S`` (see :func:`check_site`):

- jobs: stream ``UPK_JOBS_S`` on subject ``upk.jobs.S``, one durable pull consumer
  ``workers`` that every worker of the site shares;
- results: worker publishes to ``upk.results.S`` (captured by the hub's stream
  ``UPK_RESULTS`` on ``upk.results.*``); a worker never subscribes to results;
- heartbeats: ``upk.hb.S``;
- job leases: KV bucket ``upk_lease_S`` (stream ``KV_upk_lease_S``), whose revision is the
  fencing token a result carries;
- replies: the worker connects with inbox prefix ``_INBOX_S`` and may subscribe only there.
"""

from __future__ import annotations

import re

SITE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
RESULTS_STREAM = "UPK_RESULTS"
RESULTS_WILDCARD = "upk.results.*"
HEARTBEAT_WILDCARD = "upk.hb.*"
CONSUMER = "workers"


class SiteNameError(ValueError):
    """A site name that cannot be used in NATS subjects, stream and bucket names."""


def check_site(name: str) -> str:
    """``name`` if it is a valid site name (lower-case letters, digits, ``-`` and ``_``,
    at most 63 characters), else :class:`SiteNameError`."""
    if not isinstance(name, str) or not SITE_RE.fullmatch(name):
        raise SiteNameError(
            f"invalid site name {name!r}: use lower-case letters, digits, '-' and '_' "
            "(at most 63 characters, starting with a letter or digit)")
    return name


def jobs_stream(site: str) -> str:
    return f"UPK_JOBS_{check_site(site)}"


def jobs_subject(site: str) -> str:
    return f"upk.jobs.{check_site(site)}"


def results_subject(site: str) -> str:
    return f"upk.results.{check_site(site)}"


def heartbeat_subject(site: str) -> str:
    return f"upk.hb.{check_site(site)}"


def lease_bucket(site: str) -> str:
    return f"upk_lease_{check_site(site)}"


def inbox_prefix(site: str) -> str:
    return f"_INBOX_{check_site(site)}"


def worker_permissions(site: str) -> dict[str, dict[str, list[str]]]:
    """What a worker of ``site`` may publish and subscribe to, nothing more (nats-server
    ``permissions`` block, also used for a user JWT)."""
    stream, bucket = jobs_stream(site), lease_bucket(site)
    kv_stream = f"KV_{bucket}"
    return {
        "publish": {"allow": [
            results_subject(site),
            heartbeat_subject(site),
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{CONSUMER}",
            f"$JS.API.CONSUMER.INFO.{stream}.{CONSUMER}",
            f"$JS.ACK.{stream}.{CONSUMER}.>",
            f"$KV.{bucket}.>",
            f"$JS.API.STREAM.INFO.{kv_stream}",
            f"$JS.API.STREAM.MSG.GET.{kv_stream}",
            f"$JS.API.DIRECT.GET.{kv_stream}.>",
        ]},
        "subscribe": {"allow": [f"{inbox_prefix(site)}.>"]},
    }
