"""The ``Notifier`` interface: how alerts about a run leave upkeeper."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from upkeeper.checks import NoParams
from upkeeper.models import Result, RunRecord, Status


@dataclass
class Notification:
    """One message about a run: what changed and needs someone.

    ``results`` are the results worth telling about (new or changed problems, and
    recoveries); ``run`` gives the whole picture for templates.
    """

    subject: str
    text: str
    run: RunRecord
    results: list[Result] = field(default_factory=list)
    status: Status = Status.OK
    html: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Notifier:
    """Sends notifications (email, webhook, PSA ticket ...).

    Subclasses set ``name`` (used in a playbook's ``notify:`` entries) and ``Params``,
    and implement ``send``; raising from ``send`` is logged and recorded, never fatal.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def send(self, notification: Notification) -> None:
        raise NotImplementedError
