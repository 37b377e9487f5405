"""After a run: decide alerts per channel, build and send messages, write reports.

Nothing here may fail a run: every problem is logged and recorded in ``run.meta``
(``notifications``, ``reports``, ``notify_errors``), which is saved back to history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel, ValidationError

from upkeeper import Notification, Notifier, Status
from upkeeper.after_run.alerts import (
    Alert,
    ChannelConfig,
    NotifyConfig,
    decide,
    group_alerts,
    in_maintenance,
    mark_told,
    parse_notify,
)
from upkeeper.after_run.report import (
    ReportError,
    clients_for_run,
    environment,
    parse_report,
    remember_clients,
    write_reports,
)
from upkeeper.engine.secrets import Redactor, secrets_in_model
from upkeeper.engine.templating import TemplateError, render_value
from upkeeper.models import RunRecord
from upkeeper.store.history import History

from .common import send_with_retry

log = logging.getLogger("upkeeper.notify")

Sleep = Callable[[float], None]
#: Params rendered per message, not when the channel is set up.
LATE_PARAMS = {"body_template"}


@dataclass
class Delivery:
    """What happened to one message: recorded on the run and logged."""

    channel: str
    notifier: str
    subject: str
    ok: bool
    attempts: int
    error: str = ""
    alerts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _base_dir(run: RunRecord) -> Path:
    pb = run.context.get("playbook")
    path = getattr(pb, "path", "") if pb is not None else ""
    return Path(path).resolve().parent if path and not path.startswith("<") else Path.cwd()


def build_notification(run: RunRecord, alerts: Sequence[Alert], client: str | None, *,
                       template_dirs: Sequence[str] = (),
                       template_dir: str | None = None) -> Notification:
    """One message about ``alerts`` (all of one client when ``client`` is given)."""
    problems = [a for a in alerts if a.kind != "recovery"]
    status = Status.worst(a.status for a in problems) if problems else Status.OK
    if len(alerts) == 1:
        a = alerts[0]
        r = a.result
        what = {"new": r.status.value, "recovery": "RECOVERED",
                "reminder": f"still {r.status.value}",
                "changed": f"{a.previous.value if a.previous else '?'} -> {r.status.value}",
                }[a.kind]
        who = f"{a.client}/{r.host}" if a.client else r.host
        subject = f"{what}: {who} {r.name or r.check}: {r.summary}"
    else:
        recovered = len(alerts) - len(problems)
        parts = [f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"] if problems \
            else []
        if recovered:
            parts.append(f"{recovered} recovered")
        subject = f"{status.value}: {client or run.playbook}: {', '.join(parts)}"
    subject = " ".join(subject.split())[:200]
    context = {"subject": subject, "alerts": list(alerts), "run": run,
               "client": client if len(alerts) > 1 else None}
    text = environment("txt", template_dir, template_dirs).get_template(
        "notification.txt.j2").render(context)
    html = environment("html", template_dir, template_dirs).get_template(
        "notification.html.j2").render(context)
    kind = alerts[0].kind if len(alerts) == 1 else "digest"
    return Notification(subject=subject, text=text, run=run,
                        results=[a.result for a in alerts], status=status, html=html,
                        extra={"client": alerts[0].client if alerts else "", "kind": kind,
                               "alerts": [a.to_dict() for a in alerts]})


def make_notifier(chan: ChannelConfig, registry: Any, variables: Mapping[str, Any],
                  redactor: Redactor) -> Notifier:
    """Render ``{{ env.X }}`` in the channel's params and build its notifier."""
    cls = registry.notifier(chan.notifier)
    early = {k: v for k, v in chan.params.items() if k not in LATE_PARAMS}
    rendered = render_value(early, variables)  # `env.NAME` is built into the templating
    params: BaseModel = cls.Params.model_validate(
        {**rendered, **{k: v for k, v in chan.params.items() if k in LATE_PARAMS}})
    redactor.add(secrets_in_model(params))
    for key, value in early.items():
        if isinstance(value, str) and value != rendered.get(key):
            redactor.add([str(rendered[key])])  # anything from env may be a token
    headers = rendered.get("headers")
    if isinstance(headers, Mapping):
        redactor.add(str(v) for k, v in headers.items() if k.lower() != "content-type")
    notifier: Notifier = cls(params)
    return notifier


def notify(run: RunRecord, cfg: NotifyConfig, history: History, registry: Any, *,
           now: datetime | None = None, sleep: Sleep = time.sleep) -> list[Delivery]:
    """Send what each channel needs to hear about ``run``; returns every delivery."""
    now = now or datetime.now(timezone.utc)
    pb = run.context.get("playbook")
    variables = dict(getattr(pb, "vars", None) or {})
    clients = {h: (c if c != "(no client)" else "") for h, c in
               clients_for_run(run, history).items()}
    results = [r for r in run.results
               if not (run.interrupted and r.status is Status.UNKNOWN)]
    def muted(host: str) -> bool:
        return in_maintenance(run.hosts.get(host), now, cfg.mute_in_window)

    tdir = cfg.template_dir
    if tdir and not Path(tdir).is_absolute():
        tdir = str(_base_dir(run) / tdir)
    out: list[Delivery] = []
    for chan in cfg.channels:
        cid = chan.channel_id
        redactor = Redactor()
        try:
            notifier = make_notifier(chan, registry, variables, redactor)
        except (LookupError, TemplateError, ValidationError, ValueError) as exc:
            msg = redactor.text(f"channel {cid}: cannot set up {chan.notifier}: {exc}")
            log.error("%s", msg)
            out.append(Delivery(cid, chan.notifier, "", False, 0, msg))
            continue
        min_status, recovery, digest = cfg.effective(chan)
        try:
            alerts = decide(results, history, cid, min_status=min_status,
                            renotify=cfg.renotify, recovery=recovery, now=now, muted=muted,
                            clients=clients)
            mark_told(history, cid, [a for a in alerts if a.quiet], now)
            loud = [a for a in alerts if not a.quiet]
            for group in group_alerts(loud, digest):
                out.append(_deliver(run, chan, notifier, group, digest, history, redactor,
                                    now, sleep, tdir))
        except Exception as exc:  # e.g. a locked history DB: record it, go on with the rest
            msg = redactor.text(f"channel {cid}: {type(exc).__name__}: {exc}")
            log.error("%s", msg)
            out.append(Delivery(cid, chan.notifier, "", False, 0, msg))
    return out


def _deliver(run: RunRecord, chan: ChannelConfig, notifier: Notifier, group: list[Alert],
             digest: bool, history: History, redactor: Redactor, now: datetime, sleep: Sleep,
             template_dir: str | None) -> Delivery:
    cid = chan.channel_id
    plugins = run.context.get("plugins")
    tdirs = list(getattr(getattr(plugins, "registry", None), "template_dirs", []) or [])
    labels = [f"{a.result.host}/{a.result.name or a.result.check}" for a in group]
    try:
        message = build_notification(run, group, group[0].client if digest else None,
                                     template_dirs=tdirs, template_dir=template_dir)
    except jinja2.TemplateError as exc:
        msg = f"channel {cid}: notification template failed: {exc}"
        log.error("%s", msg)
        return Delivery(cid, chan.notifier, "", False, 0, msg, labels)
    attempts, error = send_with_retry(notifier, message, retries=chan.retries,
                                      backoff=chan.backoff, sleep=sleep, redact=redactor.text)
    if error:
        log.error("notify %s (%s) failed after %d attempt%s: %s", cid, chan.notifier,
                  attempts, "s" if attempts != 1 else "", error)
        return Delivery(cid, chan.notifier, message.subject, False, attempts, error, labels)
    mark_told(history, cid, group, now)
    log.info("notified %s (%s): %s", cid, chan.notifier, message.subject)
    return Delivery(cid, chan.notifier, message.subject, True, attempts, "", labels)


def reports(run: RunRecord, raw: Any, history: History) -> tuple[list[str], list[str]]:
    """Write the playbook's ``report:`` entries; (paths written, errors)."""
    plugins = run.context.get("plugins")
    tdirs = list(getattr(getattr(plugins, "registry", None), "template_dirs", []) or [])
    written: list[str] = []
    errors: list[str] = []
    try:
        configs = parse_report(raw)
    except (ValidationError, ValueError) as exc:
        return [], [f"report: {exc}"]
    for cfg in configs:
        try:
            paths = write_reports(run, history, cfg, plugin_dirs=tdirs, base=_base_dir(run))
        except (ReportError, OSError, jinja2.TemplateError) as exc:
            errors.append(f"report {cfg.template} -> {cfg.path}: {exc}")
            log.error("%s", errors[-1])
            continue
        written += [str(p) for p in paths]
        for p in paths:
            log.info("report written: %s", p)
    return written, errors


def run_finished(run: RunRecord, *, now: datetime | None = None,
                 sleep: Sleep = time.sleep) -> None:
    """The body of the ``upkeeper_run_finished`` hook."""
    pb = run.context.get("playbook")
    history = run.context.get("history")
    if pb is None or not isinstance(history, History):
        return
    remember_clients(run, history)
    changed = False
    if getattr(pb, "report", None) is not None:
        written, errors = reports(run, pb.report, history)
        run.meta["reports"] = written
        if errors:
            run.meta.setdefault("notify_errors", []).extend(errors)
        changed = True
    if getattr(pb, "notify", None) is not None:
        plugins = run.context.get("plugins")
        try:
            cfg = parse_notify(pb.notify)
        except (ValidationError, ValueError) as exc:
            msg = f"{pb.path}: notify: {exc}"
            log.error("%s", msg)
            run.meta.setdefault("notify_errors", []).append(msg)
            cfg = None
        if cfg is not None and plugins is not None:
            deliveries = notify(run, cfg, history, plugins.registry,
                                now=now or run.context.get("now"), sleep=sleep)
            run.meta["notifications"] = [d.to_dict() for d in deliveries]
        changed = True
    if changed:
        history.finish_run(run)  # saves the updated meta with the run
