"""Test plugins and a tiny inventory used by the core tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, SecretStr

from upkeeper import (
    Action,
    Check,
    CheckContext,
    CommandResult,
    Host,
    Params,
    Result,
    Status,
    Transport,
    TransportError,
    hookimpl,
)


class ListInventory:
    """Just enough of an Inventory for runner tests: every pattern selects every host."""

    def __init__(self, hosts: Sequence[Host]) -> None:
        self.hosts = {h.name: h for h in hosts}

    def select(self, pattern: str | None) -> list[Host]:
        if pattern in (None, "all", "*"):
            return list(self.hosts.values())
        return [h for n, h in self.hosts.items() if n in pattern.split(":")]


class EchoParams(Params):
    text: str = "hello"
    count: int = 1
    secret: SecretStr | None = None


class Echo(Check[EchoParams]):
    name = "test.echo"
    Params = EchoParams
    platforms = ("*",)

    def run(self, ctx: CheckContext[EchoParams]) -> Result:
        out = ctx.run(["printf", "%s", ctx.params.text]).check_ok()
        summary = f"said {out.stdout}"
        if ctx.params.secret is not None:
            summary += f" with {ctx.params.secret.get_secret_value()}"
        return Result(Status.OK, summary, metrics={"count": ctx.params.count})


class Boom(Check[Params]):
    name = "test.boom"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        raise RuntimeError("kaboom")


class HangParams(Params):
    seconds: float = Field(30, gt=0)


class Hang(Check[HangParams]):
    name = "test.hang"
    Params = HangParams
    platforms = ("*",)
    timeout = 0.5

    def run(self, ctx: CheckContext[HangParams]) -> Result:
        time.sleep(ctx.params.seconds)
        return Result(Status.OK, "woke up")


class Facts(Check[Params]):
    name = "test.facts"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        return Result(Status.OK, f"distro={ctx.host.facts.get('distro')}")


class Change(Action[Params]):
    name = "test.change"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        if ctx.check_mode:
            return Result(Status.OK, "would change", changed=False)
        return Result(Status.OK, "changed", changed=True)


class Sloppy(Check[Params]):
    """Returns what its name says instead of Results (a plugin bug)."""

    name = "test.sloppy"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Any:
        return ["fine"] if ctx.host.name == "str" else []


class DownTransport(Transport):
    """A transport whose host never answers."""

    name = "down"
    opened = 0
    lock = threading.Lock()

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            sudo: bool = False, stdin: str | bytes | None = None,
            env: Mapping[str, str] | None = None) -> CommandResult:
        with DownTransport.lock:
            DownTransport.opened += 1
        raise TransportError(f"cannot connect to {self.host.address}:22: connection refused")


class TestPlugin:
    @hookimpl
    def upkeeper_register_checks(self) -> list[type[Any]]:
        return [Echo, Boom, Hang, Facts, Change, Sloppy]

    @hookimpl
    def upkeeper_register_transports(self) -> list[type[Any]]:
        return [DownTransport]
