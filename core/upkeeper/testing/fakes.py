"""Test doubles for plugin authors: a strict fake transport, a fake clock, a fake notifier,
and ``run_check`` that runs one check the way the runner does."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from pydantic import BaseModel

from upkeeper.checks import Check, CheckContext, as_results
from upkeeper.hookspecs import hookimpl
from upkeeper.models import CommandResult, Host, Result
from upkeeper.notifier import Notification, Notifier
from upkeeper.store.history import History
from upkeeper.transport.base import Transport, command_text

Response = CommandResult | str | tuple[int, str] | tuple[int, str, str]
Handler = Callable[..., Response | None]


class UnexpectedCommand(AssertionError):
    """A strict :class:`FakeTransport` was sent a command it has no answer for."""


@dataclass
class FakeCall:
    """One command a check sent through a :class:`FakeTransport`."""

    command: str
    kind: str = "sh"
    sudo: bool = False
    stdin: str | bytes | None = None
    env: Mapping[str, str] | None = None
    timeout: float | None = None


def _as_result(command: str, resp: Response) -> CommandResult:
    if isinstance(resp, CommandResult):
        return resp
    if isinstance(resp, str):
        return CommandResult(command, 0, resp)
    if len(resp) == 2:
        return CommandResult(command, resp[0], resp[1])
    return CommandResult(command, resp[0], resp[1], resp[2])


class FakeTransport(Transport):
    """A transport that answers from canned outputs.

    ``responses`` maps a command to its output. A key matches when it equals the command
    text, when it is ``re:PATTERN`` and the pattern is found in the command, or when it
    occurs in the command text. Values are a :class:`CommandResult`, a stdout string
    (exit 0), or ``(exit_code, stdout[, stderr])``. ``handler(command, **kw)`` is asked
    first and may return ``None`` to fall through. Every call is kept in ``calls``.

    Strict by default: a command nobody answers raises :class:`UnexpectedCommand`, which
    fails the test (a check that reads exit 127 as "tool missing" must say so with an
    explicit response). ``strict=False`` answers unmatched commands with exit 127.
    ``assert_all_called()`` fails when a canned response was never used.
    """

    name = "fake"
    os_families = ("linux", "windows")

    def __init__(self, host: Host | None = None,
                 responses: Mapping[str, Response] | None = None,
                 handler: Handler | None = None,
                 facts: Mapping[str, Any] | None = None, *, strict: bool = True) -> None:
        super().__init__(host or make_host())
        self.strict = strict
        self.used: set[str] = set()
        self.responses: dict[str, Response] = dict(responses or {})
        self.handler = handler
        self.facts = dict(facts or {"os_family": "linux", "distro": "debian",
                                     "pkg_mgr": "apt", "hostname": self.host.name})
        self.calls: list[FakeCall] = []
        self.opened = False
        self.closed = False

    def add(self, command: str, response: Response) -> None:
        self.responses[command] = response

    def open(self) -> None:
        self.opened = True

    def close(self) -> None:
        self.closed = True

    def _answer(self, text: str, **kw: Any) -> CommandResult:
        if self.handler is not None:
            resp = self.handler(text, **kw)
            if resp is not None:
                return _as_result(text, resp)
        if text in self.responses:
            self.used.add(text)
            return _as_result(text, self.responses[text])
        for key, resp in self.responses.items():
            if key.startswith("re:"):
                if re.search(key[3:], text):
                    self.used.add(key)
                    return _as_result(text, resp)
            elif key in text:
                self.used.add(key)
                return _as_result(text, resp)
        if self.strict:
            raise UnexpectedCommand(
                f"FakeTransport: no response for {text!r}; known: {sorted(self.responses)}")
        return CommandResult(text, 127, "", f"FakeTransport: no response for {text!r}")

    def assert_all_called(self) -> None:
        """Fail when a canned response was never asked for."""
        unused = sorted(set(self.responses) - self.used)
        assert not unused, f"FakeTransport: responses never used: {unused}"

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            sudo: bool = False, stdin: str | bytes | None = None,
            env: Mapping[str, str] | None = None) -> CommandResult:
        text = command_text(command)
        self.calls.append(FakeCall(text, "sh", sudo, stdin, env, timeout))
        return self._answer(text, sudo=sudo, stdin=stdin, env=env, kind="sh")

    def run_powershell(self, script: str, timeout: float | None = None) -> CommandResult:
        self.calls.append(FakeCall(script, "powershell", timeout=timeout))
        return self._answer(script, kind="powershell")

    def gather_facts(self, timeout: float | None = 30) -> dict[str, Any]:
        return dict(self.facts)

    @property
    def commands(self) -> list[str]:
        return [c.command for c in self.calls]


class FakeClock:
    """A clock that moves only when told: ``clock.now()``, ``clock.advance(hours=2)``.

    Pass ``now=clock.now()`` to :func:`run_check` to run a check at that moment.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
        if self._now.tzinfo is None:
            self._now = self._now.replace(tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self._now += delta if delta is not None else timedelta(**kwargs)
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class FakeNotifier(Notifier):
    """A notifier that keeps what it was asked to send (``FakeNotifier.sent``).

    Register it with ``FakeNotifier.plugin()`` as an extra plugin; a playbook's
    ``notify: [{notifier: fake}]`` then delivers to it. ``fail_with`` makes ``send`` raise.
    """

    name = "fake"
    sent: ClassVar[list[Notification]] = []
    fail_with: ClassVar[Exception | None] = None

    def send(self, notification: Notification) -> None:
        failure = type(self).fail_with
        if failure is not None:
            raise failure
        type(self).sent.append(notification)

    @classmethod
    def reset(cls) -> None:
        cls.sent = []
        cls.fail_with = None

    @classmethod
    def plugin(cls) -> object:
        """A plugin object registering this notifier."""
        notifier = cls

        class _Plugin:
            @hookimpl
            def upkeeper_register_notifiers(self) -> list[type[Notifier]]:
                return [notifier]

        return _Plugin()


def make_host(name: str = "testhost", vars: Mapping[str, Any] | None = None,
              facts: Mapping[str, Any] | None = None,
              groups: Iterable[str] = ()) -> Host:
    """A host for tests; facts default to a Debian Linux box."""
    default_facts = {"os_family": "linux", "distro": "debian", "distro_version": "12",
                     "pkg_mgr": "apt", "hostname": name, "kernel": "6.1.0", "is_root": True}
    if facts:
        default_facts.update(facts)
    return Host(name=name, vars=dict(vars or {}), groups=list(groups), facts=default_facts)


def normalize_results(value: Result | Iterable[Result] | None, host: str, check: str,
                      name: str = "") -> list[Result]:
    """Turn what ``Check.run`` returned into a list with host and check filled in.

    :raises TypeError: the check returned something that is not a Result.
    """
    items = as_results(value)
    for r in items:
        r.host = r.host or host
        r.check = r.check or check
        r.name = r.name or name or check
    return items


def run_check(check: type[Check[Any]], params: Mapping[str, Any] | BaseModel | None = None,
              *, host: Host | None = None, transport: Transport | None = None,
              responses: Mapping[str, Response] | None = None,
              history: History | None = None, check_mode: bool = False,
              now: datetime | None = None, timeout: float = 300.0) -> list[Result]:
    """Run one check like the runner would, letting exceptions through for the test.
    Each call is a run of its own (its own run id)."""
    if transport is None:
        transport = FakeTransport(host, responses)
    host = host or transport.host
    if isinstance(params, BaseModel):
        model = params
    else:
        model = check.Params.model_validate(dict(params or {}))
    hist = history or History(":memory:")
    ctx: CheckContext[Any] = CheckContext(
        host=host, transport=transport, params=model,
        history=hist.for_host(host.name, check.name), check_mode=check_mode,
        run_id=f"test-{uuid.uuid4().hex[:12]}", timeout=timeout,
    )
    if now is not None:
        ctx.now = now
    return normalize_results(check().run(ctx), host.name, check.name)
