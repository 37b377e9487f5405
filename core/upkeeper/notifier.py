"""The ``Notifier`` interface: how alerts about a run leave upkeeper."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from upkeeper.checks import NoParams
from upkeeper.models import Notification

__all__ = ["Notification", "Notifier"]


class Notifier:
    """Sends notifications (email, webhook, PSA ticket ...).

    Subclasses set ``name`` (used in a playbook's ``notify:`` entries) and ``Params``,
    and implement ``send``; raising from ``send`` is logged and recorded, never fatal, and
    retried with backoff unless the exception has ``retryable = False``. Deciding what to
    send, to whom and when is core's work (``upkeeper.after_run``).
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def send(self, notification: Notification) -> None:
        raise NotImplementedError
