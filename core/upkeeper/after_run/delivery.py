"""Sending alerts: per channel, decide what is news, route each alert to the destination
its host's vars give, group (digests, unreachable hosts per client), send with retries,
and remember what was told only once it was.

Nothing here may fail a run: every problem becomes a failed :class:`Delivery`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from upkeeper.after_run.alerts import (
    Alert,
    decide,
    group_alerts,
    host_results,
    in_maintenance,
    mark_told,
)
from upkeeper.after_run.context import RunContext
from upkeeper.after_run.messages import build_notification
from upkeeper.after_run.notify_config import ChannelConfig, NotifyConfig
from upkeeper.after_run.report import NO_CLIENT, clients_for_run
from upkeeper.after_run.targets import Target, build_target, host_context
from upkeeper.after_run.text import clean_text
from upkeeper.engine.secrets import secrets_in_values
from upkeeper.engine.templating import TemplateError
from upkeeper.engine.variables import bind_host
from upkeeper.models import Host, Notification, Result, RunRecord
from upkeeper.notifier import Notifier
from upkeeper.registry import UnknownNameError

log = logging.getLogger("upkeeper.after_run.delivery")

Sleep = Callable[[float], object]


@dataclass
class Delivery:
    """What happened to one message (or to a channel that could not send at all)."""

    channel: str
    notifier: str
    subject: str
    ok: bool
    attempts: int
    error: str = ""
    alerts: list[str] = field(default_factory=list)
    target: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def send_with_retry(notifier: Notifier, notification: Notification, *, retries: int,
                    backoff: float, sleep: Sleep,
                    redact: Callable[[str], str] = lambda s: s) -> tuple[int, str]:
    """Send, retrying failures after ``backoff``, ``2*backoff``... seconds; an exception
    with ``retryable = False`` (a refused login, a 4xx answer) is not retried.

    :returns: (attempts made, last error or "" when delivered).
    """
    attempts = 0
    while True:
        attempts += 1
        try:
            notifier.send(notification)
            return attempts, ""
        except Exception as exc:  # a notifier is third-party code; its failure is data
            error = redact(clean_text(f"{type(exc).__name__}: {exc}" if not hasattr(
                exc, "retryable") else str(exc), single_line=True))
            if not getattr(exc, "retryable", True) or attempts > retries:
                return attempts, error
            delay = backoff * (2 ** (attempts - 1))
            log.info("%s: attempt %d failed (%s); retrying in %.1fs", notifier.name,
                     attempts, error, delay)
            sleep(delay)


class _Channel:
    """One channel during one run: its notifier class, its destinations per host."""

    def __init__(self, chan: ChannelConfig, cls: type[Notifier], run: RunRecord,
                 ctx: RunContext) -> None:
        self.chan, self.cls, self.run, self.ctx = chan, cls, run, ctx
        self._by_host: dict[str, Target | str] = {}
        self._by_key: dict[str, Target] = {}

    def target(self, host: str) -> Target | str:
        """The host's destination, or why there is none (a masked one-line error)."""
        if host not in self._by_host:
            try:
                context = host_context(self.ctx.playbook.vars, self._rendered(host))
                made = build_target(self.chan, self.cls, context)
                self._by_host[host] = self._by_key.setdefault(made.key, made)
            except (TemplateError, ValidationError, ValueError) as exc:
                reason = f"cannot set up {self.chan.notifier} for host {host}: {exc}"
                self._by_host[host] = self.ctx.redactor.text(clean_text(reason,
                                                                         single_line=True))
        return self._by_host[host]

    def _rendered(self, name: str) -> Host | None:
        """The host with its vars rendered (``notify_email: "{{ client_email }}"``); its
        secret vars join the run's redactor."""
        host = self.run.hosts.get(name)
        if host is None:
            return None
        redactor = self.ctx.redactor
        return bind_host(host, self.ctx.playbook.vars, lambda var, value: redactor.add(
            secrets_in_values({var: value})))


def notify(run: RunRecord, cfg: NotifyConfig, ctx: RunContext,
           results: list[Result] | None = None) -> list[Delivery]:
    """Send what each channel needs to hear about ``run``; returns every delivery.
    ``results`` replaces what is decided on (default: the run's results and one
    reachability result per host); the site watch of ``serve --hub`` passes "site
    offline" and "back" reachability results for a site's hosts outside any run."""
    now = ctx.clock()
    clients = {h: (c if c != NO_CLIENT else "") for h, c in
               clients_for_run(run, ctx.history).items()}
    if results is None:
        checks, hosts = host_results(run)
        results = [*checks, *hosts]

    def muted(host: str) -> bool:
        return in_maintenance(run.hosts.get(host), now, cfg.mute_in_window)

    tdir = cfg.template_dir
    if tdir and not Path(tdir).is_absolute():
        tdir = str(ctx.base_dir / tdir)
    out: list[Delivery] = []
    for chan in cfg.channels:
        cid = chan.channel_id
        try:
            channel = _Channel(chan, ctx.plugins.registry.notifier(chan.notifier), run, ctx)
        except UnknownNameError as exc:
            out.append(_failed(cid, chan.notifier, f"channel {cid}: {exc}"))
            continue
        min_status, recovery, digest = cfg.effective(chan)
        try:
            alerts = decide(results, ctx.history, cid, min_status=min_status,
                            renotify=cfg.renotify, recovery=recovery, now=now, muted=muted,
                            clients=clients)
            mark_told(ctx.history, cid, [a for a in alerts if a.quiet], now)
            out += _send_channel(run, ctx, channel, [a for a in alerts if not a.quiet],
                                 digest, now, tdir)
        except Exception as exc:  # e.g. a locked history DB: record it, go on with the rest
            out.append(_failed(cid, chan.notifier, ctx.redactor.text(
                f"channel {cid}: {type(exc).__name__}: {exc}")))
    return out


def _failed(cid: str, notifier: str, message: str, labels: Sequence[str] = (),
            target: str = "") -> Delivery:
    log.error("%s", message)
    return Delivery(cid, notifier, "", False, 0, message, list(labels), target)


def _send_channel(run: RunRecord, ctx: RunContext, channel: _Channel, loud: list[Alert],
                  digest: bool, now: datetime, tdir: str | None) -> list[Delivery]:
    """Route the channel's alerts to their destinations and send them."""
    cid, name = channel.chan.channel_id, channel.chan.notifier
    routed: dict[str, tuple[Target, list[Alert]]] = {}
    broken: dict[str, list[Alert]] = {}
    for alert in loud:
        target = channel.target(alert.result.host)
        if isinstance(target, str):
            broken.setdefault(alert.result.host, []).append(alert)  # untold: tried next run
        else:
            routed.setdefault(target.key, (target, []))[1].append(alert)
    out = [_failed(cid, name, f"channel {cid}: {channel.target(host)}", _labels(alerts),
                   f"(host {host})") for host, alerts in broken.items()]
    for target, alerts in routed.values():
        for group in group_alerts(alerts, digest):
            whole_client = digest or all(a.unreachable for a in group)
            out.append(_deliver(run, ctx, channel.chan, target, group,
                                group[0].client if whole_client else None, now, tdir))
    return out


def _labels(alerts: Sequence[Alert]) -> list[str]:
    return [f"{a.result.host}/{a.result.name or a.result.check}" for a in alerts]


def _deliver(run: RunRecord, ctx: RunContext, chan: ChannelConfig, target: Target,
             group: list[Alert], client: str | None, now: datetime,
             template_dir: str | None) -> Delivery:
    import jinja2

    cid = chan.channel_id

    def redact(text: str) -> str:
        return target.redactor.text(ctx.redactor.text(text))

    try:
        message = build_notification(run, group, client, template_dirs=ctx.template_dirs,
                                     template_dir=template_dir)
    except jinja2.TemplateError as exc:
        return _failed(cid, chan.notifier, redact(
            f"channel {cid}: notification template failed: {exc}"), _labels(group),
            target.label)
    attempts, error = send_with_retry(target.notifier, message, retries=chan.retries,
                                      backoff=chan.backoff, sleep=ctx.sleep, redact=redact)
    subject = redact(message.subject)
    if error:
        log.error("notify %s (%s -> %s) failed after %d attempt%s: %s", cid, chan.notifier,
                  target.label, attempts, "s" if attempts != 1 else "", error)
        return Delivery(cid, chan.notifier, subject, False, attempts, error, _labels(group),
                        target.label)
    mark_told(ctx.history, cid, group, now)
    log.info("notified %s (%s -> %s): %s", cid, chan.notifier, target.label, subject)
    return Delivery(cid, chan.notifier, subject, True, attempts, "", _labels(group),
                    target.label)

