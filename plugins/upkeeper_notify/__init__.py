"""upkeeper built-in plugin: notify. The ``email`` (SMTP) and ``webhook`` (generic JSON,
Slack, Teams, or your own body) notifiers that a playbook's ``notify:`` channels name.

Deciding what is worth a message, routing, retries and the record of deliveries are
core's work (``upkeeper.after_run``); this plugin only sends.
"""

from __future__ import annotations

from upkeeper import Notifier, hookimpl

from .smtp import EmailNotifier
from .webhook import WebhookNotifier

UPKEEPER_API = "1.1"

__all__ = ["EmailNotifier", "WebhookNotifier"]


@hookimpl
def upkeeper_register_notifiers() -> list[type[Notifier]]:
    return [EmailNotifier, WebhookNotifier]
