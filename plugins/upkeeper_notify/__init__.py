"""upkeeper built-in plugin: notify. Email and webhook notifiers, and the after-run hook
that sends alerts and writes reports as a playbook's ``notify:`` and ``report:`` ask.
"""

from __future__ import annotations

from typing import Any

from upkeeper import hookimpl
from upkeeper.models import RunRecord

from .smtp import EmailNotifier
from .webhook import WebhookNotifier

UPKEEPER_API = "1"

__all__ = ["EmailNotifier", "WebhookNotifier"]


@hookimpl
def upkeeper_register_notifiers() -> list[type[Any]]:
    return [EmailNotifier, WebhookNotifier]


@hookimpl
def upkeeper_run_finished(run: RunRecord) -> None:
    playbook = run.context.get("playbook")
    if playbook is not None and not (playbook.notify or playbook.report):
        return  # nothing to send or write: skip importing the delivery machinery
    from .dispatch import run_finished

    run_finished(run)
