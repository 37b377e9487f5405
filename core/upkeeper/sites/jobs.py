"""The job a hub publishes for one (run, host) of a site, and the result a worker sends
back: their JSON shapes, and keeping secret literals out of jobs.

A job carries the playbook's checks as written (templates render at the worker, where
facts can be gathered) and the host's vars as written, except secret literals (in host
vars, playbook vars and check params): those are listed by path and resolved at the
worker from its own secrets (guarantee 9), so no secret ever sits in the JetStream store.
``{{ env.X }}`` references stay: they read the worker's environment when rendered there.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from upkeeper.engine.playbook import Playbook
from upkeeper.engine.secrets import is_secret_key
from upkeeper.engine.templating import is_templated
from upkeeper.models import Host, Result, Status

JOB_VERSION = 1
#: The summary prefix of results recorded for jobs nobody ran in time.
EXPIRED = "expired"
SITE_VAR = "site"


def site_of(host: Host) -> str | None:
    """The site a host runs from (its ``site`` var), or None for the hub itself."""
    value = dict.get(host.vars, SITE_VAR) if isinstance(host.vars, dict) else None
    if value is None or value == "":
        return None
    return str(value)


def strip_secrets(value: Any, path: tuple[str, ...] = ()) -> tuple[Any, list[list[str]]]:
    """``value`` without secret literals (keys :func:`is_secret_key` names, any depth),
    and the paths removed."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        removed: list[list[str]] = []
        for k, v in value.items():
            key = str(k)
            if is_secret_key(key) and not (isinstance(v, str) and is_templated(v)) \
                    and not isinstance(v, (Mapping, list)):
                removed.append([*path, key])
                continue
            out[key], more = strip_secrets(v, (*path, key))
            removed += more
        return out, removed
    if isinstance(value, list):
        items, removed = [], []
        for i, v in enumerate(value):
            item, more = strip_secrets(v, (*path, str(i)))
            items.append(item)
            removed += more
        return items, removed
    return value, []


def job_id(run_id: str, host: str) -> str:
    """The job's id, also its ``Nats-Msg-Id``: slot (run) + host, so a re-published job
    is dropped by the stream's duplicate window."""
    return f"{run_id}/{host}"


def lease_key(jid: str) -> str:
    """A KV key for any job id (host names may hold characters keys refuse)."""
    return "job." + hashlib.sha256(jid.encode()).hexdigest()[:40]


@dataclass
class Job:
    """One (run, host) for a site's worker."""

    job_id: str
    run_id: str
    site: str
    host: str
    host_vars: dict[str, Any]
    groups: list[str]
    playbook: dict[str, Any]
    deadline: float
    check_mode: bool = False
    force: bool = False
    allow_anytime: bool = False
    has_actions: bool = False
    secret_paths: list[list[str]] = field(default_factory=list)
    issued: float = field(default_factory=time.time)
    #: The hub's remediation state for the host (:func:`upkeeper.sites.fixes.hub_fix_state`).
    fix_state: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps({"v": JOB_VERSION, **self.__dict__}, default=str).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Job:
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.pop("v", None) != JOB_VERSION:
            raise ValueError("not an upkeeper job of a known version")
        return cls(**raw)

    @property
    def checks(self) -> list[dict[str, Any]]:
        return list(self.playbook.get("checks", []))

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) > self.deadline


def build_job(pb: Playbook, host: Host, site: str, run_id: str, deadline: float, *,
              check_mode: bool, force: bool, allow_anytime: bool,
              has_actions: bool, fix_state: dict[str, Any] | None = None) -> Job:
    raw_vars = dict(dict.items(host.vars))
    host_vars, removed = strip_secrets(raw_vars)
    pb_vars, pb_removed = strip_secrets(dict(pb.vars))
    checks, param_removed = [], []
    for i, spec in enumerate(pb.checks):
        dumped = spec.model_dump(exclude_none=True)
        dumped["params"], removed_here = strip_secrets(dumped.get("params") or {})
        param_removed += [["@check", str(i), *p] for p in removed_here]
        checks.append(dumped)
    playbook = {
        "name": pb.name, "hosts": host.name, "vars": pb_vars, "checks": checks,
        "timeout": pb.timeout, "host_timeout": pb.host_timeout,
        "allow_anytime": pb.allow_anytime, "forks": 1,
    }
    return Job(job_id=job_id(run_id, host.name), run_id=run_id, site=site, host=host.name,
               host_vars=host_vars, groups=list(host.groups), playbook=playbook,
               deadline=deadline, check_mode=check_mode, force=force,
               allow_anytime=allow_anytime,
               has_actions=has_actions or (bool(fix_state) and not check_mode),
               fix_state=dict(fix_state or {}),
               secret_paths=removed + [["@playbook", *p] for p in pb_removed]
               + param_removed)


def result_to_wire(index: int, r: Result) -> dict[str, Any]:
    return {"index": index, "status": r.status.value, "summary": r.summary,
            "metrics": dict(r.metrics), "details": r.details, "changed": r.changed,
            "check": r.check, "name": r.name, "duration": r.duration,
            "started": r.started.timestamp()}


def result_from_wire(host: str, raw: Mapping[str, Any]) -> tuple[int, Result]:
    metrics = {str(k): float(v) for k, v in dict(raw.get("metrics") or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    started = datetime.fromtimestamp(float(raw.get("started") or time.time()), timezone.utc)
    return int(raw["index"]), Result(
        Status(str(raw["status"])), str(raw.get("summary", "")), metrics,
        raw.get("details"), bool(raw.get("changed")), host=host,
        check=str(raw.get("check", "")), name=str(raw.get("name", "")),
        duration=float(raw.get("duration") or 0.0), started=started)


@dataclass
class JobResult:
    """What a worker sends back for one job; ``token`` is the lease revision (fencing)."""

    job_id: str
    run_id: str
    site: str
    host: str
    token: int
    worker: str
    results: list[dict[str, Any]]
    #: What the fix pass did at the worker (:func:`upkeeper.sites.fixes.collect`).
    remediation: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps(self.__dict__, default=str).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> JobResult:
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("a job result is a JSON object")
        return cls(**raw)

    def decoded(self) -> list[tuple[int, Result]]:
        return [result_from_wire(self.host, r) for r in self.results]


def unknown_results(job: Job, summary: str,
                    indexes: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One UNKNOWN ``summary`` per check of ``job`` (for expired or refused jobs)."""
    checks = job.checks
    out = []
    for i in (indexes if indexes is not None else range(len(checks))):
        spec = checks[i]
        out.append(result_to_wire(i, Result(
            Status.UNKNOWN, summary, host=job.host, check=str(spec.get("check", "")),
            name=str(spec.get("name") or spec.get("check", "")))))
    return out
