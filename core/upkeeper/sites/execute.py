"""Running one job at the worker with the ordinary engine (the same per-host code a local
run uses), after filling in the host's secrets from the worker's own store."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from upkeeper.engine.hostrun import run_host
from upkeeper.engine.playbook import Playbook
from upkeeper.engine.runner import Runner
from upkeeper.engine.secrets import Redactor, secrets_for_run
from upkeeper.models import Host, Result, RunRecord, Status, utcnow
from upkeeper.plugins import PluginSystem
from upkeeper.sites.fixes import collect, worker_fix_pass
from upkeeper.sites.jobs import Job, result_to_wire
from upkeeper.store.history import History

SECRET_ENV_PREFIX = "UPKEEPER_SECRET_"


class SecretsError(ValueError):
    """The worker's secrets file cannot be used (the message names it)."""


class WorkerSecrets:
    """Secret vars known only at the worker: a YAML file ``{vars: {NAME: value},
    hosts: {HOST: {NAME: value}}}`` (host entries win) and ``UPKEEPER_SECRET_NAME``
    environment variables for top-level names."""

    def __init__(self, path: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.common: dict[str, Any] = {}
        self.hosts: dict[str, dict[str, Any]] = {}
        env = os.environ if environ is None else environ
        self.env = {k[len(SECRET_ENV_PREFIX):].lower(): v for k, v in env.items()
                    if k.startswith(SECRET_ENV_PREFIX)}
        if path is not None:
            try:
                raw = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise SecretsError(f"{path}: cannot read secrets: {exc}") from exc
            if not isinstance(raw, dict) or not all(
                    isinstance(raw.get(k, {}), dict) for k in ("vars", "hosts")):
                raise SecretsError(f"{path}: expected 'vars:' and 'hosts:' mappings")
            self.common = dict(raw.get("vars") or {})
            self.hosts = {str(h): dict(v or {}) for h, v in (raw.get("hosts") or {}).items()}

    def lookup(self, host: str, path: Sequence[str]) -> Any:
        for source in (self.hosts.get(host, {}), self.common):
            value: Any = source
            for part in path:
                if not isinstance(value, Mapping) or part not in value:
                    value = None
                    break
                value = value[part]
            if value is not None:
                return value
        if len(path) == 1:
            return self.env.get(re.sub(r"\W", "_", path[0]).lower())
        return None


def _put(target: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            return  # the structure around it was changed: leave the secret out
        target = nxt
    target[path[-1]] = value


def job_inputs(job: Job, secrets: WorkerSecrets) -> tuple[Playbook, Host]:
    host_vars = dict(job.host_vars)
    pb_raw = dict(job.playbook)
    pb_vars = dict(pb_raw.get("vars") or {})
    checks = [dict(c) for c in pb_raw.get("checks") or []]
    for path in job.secret_paths:
        if len(path) > 2 and path[0] == "@check" and path[1].isdigit() \
                and int(path[1]) < len(checks):
            # A secret param is looked up by its name (path) in the worker's secrets.
            value = secrets.lookup(job.host, path[2:])
            params = checks[int(path[1])].setdefault("params", {})
            if value is not None and isinstance(params, dict):
                _put(params, path[2:], value)
            continue
        if path and path[0] == "@playbook":
            value = secrets.lookup(job.host, path[1:])
            if value is not None:
                _put(pb_vars, path[1:], value)
            continue
        value = secrets.lookup(job.host, path)
        if value is not None:
            _put(host_vars, path, value)
    pb_raw["vars"], pb_raw["checks"] = pb_vars, checks
    return Playbook.model_validate(pb_raw), Host(name=job.host, vars=host_vars,
                                                 groups=list(job.groups))


class _Collecting(Runner):
    """A runner for one host that also keeps each result's check index."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delivered: list[tuple[int, Result]] = []

    def deliver(self, host: str, index: int, results: Sequence[Result],
                redactor: Redactor) -> None:
        if (host, index) not in self._claimed and not self._closed:
            self.delivered += [(index, r) for r in results]
        super().deliver(host, index, results, redactor)


def run_job(job: Job, plugins: PluginSystem, history: History, secrets: WorkerSecrets,
            local_run_id: str, worker: str = "worker"
            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The job's results in wire form, secrets masked (every check gets one), and what
    its fix pass did (empty without fixes: see :mod:`upkeeper.sites.fixes`)."""
    pb, host = job_inputs(job, secrets)
    fix_pass = worker_fix_pass(pb, plugins, history, site=job.site, host=job.host,
                               actor=f"site:{job.site}:{worker}", state=job.fix_state) \
        if job.fix_state else None
    runner = _Collecting(pb, plugins, history, check_mode=job.check_mode, force=job.force,
                         allow_anytime=job.allow_anytime, host_finished=fix_pass)
    run = RunRecord(run_id=local_run_id, playbook=pb.name, check_mode=job.check_mode)
    run.meta = {"job": job.job_id, "site": job.site}
    runner.run, runner.run_id = run, job.run_id
    runner.redactor.add(secrets_for_run(pb, [host]))
    history.start_run(run)
    try:
        run_host(runner, host)
    finally:
        runner.fail_rest(host, 0, Status.UNKNOWN,  # whatever run_host could not deliver
                         "worker error: the check delivered no result", runner.redactor)
        run.finished = utcnow()
        history.finish_run(run)
    done = collect(fix_pass, history, job.host) if fix_pass is not None else {}
    return [result_to_wire(i, r) for i, r in sorted(runner.delivered,
                                                     key=lambda p: p[0])], done
