"""A scripted check and a small MSP-shaped inventory for driving real runs in tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from upkeeper import Check, CheckContext, Params, Result, Status, hookimpl


class Scripted(Check[Params]):
    """Status and summary come from host vars, so each run can script its outcome."""

    name = "test.scripted"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        status = Status(str(ctx.host.vars.get("scripted_status", "OK")))
        summary = str(ctx.host.vars.get("scripted_summary", f"scripted {status.value}"))
        value = float(ctx.host.vars.get("scripted_value", 1))
        return Result(status, summary, metrics={"value": value})


class ScriptedPlugin:
    @hookimpl
    def upkeeper_register_checks(self) -> list[type[Any]]:
        return [Scripted]


def write_inventory(path: Path, hosts: Mapping[str, Mapping[str, Any]]) -> Path:
    """``hosts``: name -> vars (``client`` among them); every host is local."""
    doc = {"all": {"vars": {"ansible_connection": "local"},
                   "hosts": {name: dict(v) for name, v in hosts.items()}}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def write_playbook(path: Path, notify: Any = None, report: Any = None,
                   **extra: Any) -> Path:
    doc: dict[str, Any] = {"name": "nightly", "hosts": "all",
                           "checks": [{"check": "test.scripted", "name": "scripted"}], **extra}
    if notify is not None:
        doc["notify"] = notify
    if report is not None:
        doc["report"] = report
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
