"""The message about a group of alerts: subject line, plain text and HTML bodies from the
``notification`` templates, with everything from hosts cleaned of control characters."""

from __future__ import annotations

from collections.abc import Sequence

from upkeeper.after_run.alerts import GOOD_KINDS, Alert
from upkeeper.after_run.report import environment
from upkeeper.after_run.text import clean_text
from upkeeper.models import Notification, RunRecord, Status

SUBJECT_MAX = 200


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def subject_for(run: RunRecord, alerts: Sequence[Alert], client: str | None) -> str:
    """``CRIT: Acme/web1 disk /var: 97% used`` for one alert; for several, what they
    add up to (``CRIT: Acme: 2 problems, 1 recovered``, ``UNKNOWN: Acme: 10 hosts
    unreachable``)."""
    problems = [a for a in alerts if a.kind not in GOOD_KINDS]
    status = Status.worst(a.status for a in problems) if problems else Status.OK
    if len(alerts) == 1:
        a = alerts[0]
        r = a.result
        what = {"new": r.status.value, "recovery": "RECOVERED", "fixed": "FIXED",
                "reminder": f"still {r.status.value}",
                "changed": f"{a.previous.value if a.previous else '?'} -> {r.status.value}",
                }[a.kind]
        who = f"{a.client}/{r.host}" if a.client else r.host
        subject = f"{what}: {who} {r.name or r.check}: {r.summary}"
    else:
        lost = [a for a in problems if a.unreachable]
        parts = []
        if lost:
            parts.append(f"{_plural(len(lost), 'host')} unreachable")
        if len(problems) > len(lost):
            parts.append(_plural(len(problems) - len(lost), "problem"))
        fixed = sum(a.kind == "fixed" for a in alerts)
        if fixed:
            parts.append(f"{fixed} fixed for you")
        recovered = len(alerts) - len(problems) - fixed
        if recovered:
            parts.append(f"{recovered} recovered")
        subject = f"{status.value}: {client or run.playbook}: {', '.join(parts)}"
    return clean_text(subject, single_line=True)[:SUBJECT_MAX]


def build_notification(run: RunRecord, alerts: Sequence[Alert], client: str | None, *,
                       template_dirs: Sequence[str] = (),
                       template_dir: str | None = None) -> Notification:
    """One message about ``alerts`` (all of one client when ``client`` is given)."""
    problems = [a for a in alerts if a.kind not in GOOD_KINDS]
    status = Status.worst(a.status for a in problems) if problems else Status.OK
    subject = subject_for(run, alerts, client)
    context = {"subject": subject, "alerts": list(alerts), "run": run,
               "client": client if len(alerts) > 1 else None}
    text = environment("txt", template_dir, template_dirs).get_template(
        "notification.txt.j2").render(context)
    html = environment("html", template_dir, template_dirs).get_template(
        "notification.html.j2").render(context)
    kind = alerts[0].kind if len(alerts) == 1 else "digest"
    return Notification(subject=subject, text=text, run=run,
                        results=[a.result for a in alerts], status=status, html=html,
                        extra={"client": clean_text(alerts[0].client if alerts else "",
                                                    single_line=True),
                               "kind": kind, "alerts": [a.to_dict() for a in alerts]})
