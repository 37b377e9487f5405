"""A run survives its plugins and its stop: interrupts, malformed results, exits, hangs."""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.core.helpers import ListInventory, TestPlugin
from upkeeper import Check, CheckContext, Params, Result, Status, hookimpl
from upkeeper.engine.guard import HUNG
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.models import Host
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History

RELEASE = threading.Event()


class Malformed(Check[Params]):
    name = "robust.malformed"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        return Result(Status.OK, 12345,  # type: ignore[arg-type]
                      metrics={"good": 2, "bad": math.nan, "worse": math.inf, "txt": "7"},
                      details={"obj": object(), ("t", 1): {1, 2}, "nan": math.nan})


class Exits(Check[Params]):
    name = "robust.exits"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        sys.exit(2)  # what argparse does on a usage error


class Interrupts(Check[Params]):
    name = "robust.interrupts"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        raise KeyboardInterrupt


class Stuck(Check[Params]):
    """Hangs in Python until the test releases it: no command to kill."""

    name = "robust.stuck"
    platforms = ("*",)
    timeout = 0.2

    def run(self, ctx: CheckContext[Params]) -> Result:
        RELEASE.wait(120)
        return Result(Status.OK, "released")


class Robust:
    @hookimpl
    def upkeeper_register_checks(self) -> list[type[Any]]:
        return [Malformed, Exits, Interrupts, Stuck]


@pytest.fixture
def plugins():  # type: ignore[no-untyped-def]
    return get_plugin_manager(extra_plugins=[("testplugin", TestPlugin()),
                                             ("robust", Robust())])


def local(name: str = "localhost") -> Host:
    return Host(name, vars={"ansible_connection": "local"}, groups=["all"])


def playbook(tmp_path: Path, body: str, registry: Any) -> Any:
    p = tmp_path / "pb.yml"
    p.write_text(body)
    return load_playbook(p, registry)


def wait_for(cond: Any, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not cond():
        assert time.monotonic() < end, "condition not met before the deadline"
        time.sleep(0.02)


def test_stopped_run_reports_interrupted_not_a_false_crit(tmp_path: Path, plugins) -> None:  # type: ignore[no-untyped-def]
    started = tmp_path / "started"
    pb = playbook(tmp_path, f"""
name: stop me
checks:
  - name: slow
    check: system.command
    params: {{command: "touch {started}; sleep 60; echo fine", ok_regex: "^fine$"}}
  - test.echo
""", plugins.registry)
    stop = threading.Event()
    threading.Thread(target=lambda: (wait_for(started.exists), stop.set()),
                     daemon=True).start()
    history = History(tmp_path / "h.db")
    record = run_playbook(pb, ListInventory([local("a"), local("b")]), plugins, history,
                          stop_event=stop)
    assert record.interrupted
    assert len(record.results) == 4
    for r in record.results:
        assert r.status is Status.UNKNOWN, (r.name, r.status, r.summary)
        assert r.summary.startswith("run interrupted"), r.summary
    stored = History(tmp_path / "h.db").get_run(record.run_id)
    assert stored is not None and stored.interrupted
    assert sorted(r.status for r in stored.results) == [Status.UNKNOWN] * 4


def test_malformed_result_is_coerced_and_poisons_nothing(tmp_path: Path, plugins) -> None:  # type: ignore[no-untyped-def]
    pb = playbook(tmp_path, "name: m\nchecks: [test.echo, robust.malformed, test.echo]\n",
                  plugins.registry)
    history = History(tmp_path / "h.db")
    record = run_playbook(pb, ListInventory([local()]), plugins, history)
    assert [r.check for r in record.results] == ["test.echo", "robust.malformed", "test.echo"]
    assert [r.status for r in record.results] == [Status.OK] * 3
    bad = record.results[1]
    assert bad.summary.startswith("12345 [metrics dropped (not finite numbers): ")
    assert "bad=nan" in bad.summary and "worse=inf" in bad.summary and "txt=7" in bad.summary
    assert bad.metrics == {"good": 2.0}
    assert bad.details["nan"] == "nan" and bad.details["('t', 1)"] == [1, 2]
    assert bad.details["obj"].startswith("<object object")
    stored = History(tmp_path / "h.db").get_run(record.run_id)
    assert stored is not None and len(stored.results) == 3


def test_exit_and_keyboardinterrupt_in_a_check_are_results(tmp_path: Path, plugins) -> None:  # type: ignore[no-untyped-def]
    pb = playbook(tmp_path, "name: x\nforks: 3\n"
                  "checks: [robust.exits, robust.interrupts, test.echo]\n", plugins.registry)
    hosts = [local(n) for n in ("a", "b", "c")]
    record = run_playbook(pb, ListInventory(hosts), plugins, History(tmp_path / "h.db"))
    assert not record.interrupted
    assert len(record.results) == 9
    by = {(r.host, r.check): r for r in record.results}
    for h in ("a", "b", "c"):
        assert by[(h, "robust.exits")].status is Status.UNKNOWN
        assert "SystemExit(2)" in by[(h, "robust.exits")].summary
        assert "KeyboardInterrupt" in by[(h, "robust.interrupts")].summary
        assert by[(h, "test.echo")].status is Status.OK


@pytest.mark.timeout(60)
def test_hung_hooks_are_abandoned_and_recorded(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("UPKEEPER_RESULT_HOOK_TIMEOUT", "0.3")
    monkeypatch.setenv("UPKEEPER_RUN_FINISHED_HOOK_TIMEOUT", "0.3")
    calls = {"result": 0, "finished": 0}
    never = threading.Event()

    class Hangs:
        @hookimpl
        def upkeeper_result(self, result: Result) -> None:
            calls["result"] += 1
            never.wait()

        @hookimpl
        def upkeeper_run_finished(self, run: Any) -> None:
            calls["finished"] += 1
            never.wait()

    seen: list[str] = []

    class Fine:
        @hookimpl
        def upkeeper_result(self, result: Result) -> None:
            seen.append(result.check)

    plugins = get_plugin_manager(extra_plugins=[("t", TestPlugin()), ("hangs", Hangs()),
                                                ("fine", Fine())])
    pb = playbook(tmp_path, "name: h\nchecks: [test.echo, test.echo, test.echo]\n",
                  plugins.registry)
    history = History(tmp_path / "h.db")
    record = run_playbook(pb, ListInventory([local()]), plugins, history)
    never.set()
    assert [r.status for r in record.results] == [Status.OK] * 3
    assert calls == {"result": 1, "finished": 1}  # abandoned after hanging once
    assert seen == ["test.echo"] * 3
    problems = record.meta["hook_problems"]
    assert any("plugin hangs: hook upkeeper_result did not return within 0.3s" in p
               for p in problems)
    assert any("plugin hangs: hook upkeeper_run_finished did not return" in p
               for p in problems)
    stored = History(tmp_path / "h.db").get_run(record.run_id)
    assert stored is not None and stored.meta["hook_problems"] == problems


def test_hung_python_check_threads_are_bounded_across_runs(tmp_path: Path, plugins) -> None:  # type: ignore[no-untyped-def]
    RELEASE.clear()
    pb = playbook(tmp_path, "name: s\nchecks: [robust.stuck]\n", plugins.registry)
    history = History(tmp_path / "h.db")

    def stuck_threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "upkeeper-check-robust.stuck")

    try:
        summaries = []
        for _ in range(HUNG.limit + 3):
            (r,) = run_playbook(pb, ListInventory([local()]), plugins, history).results
            assert r.status is Status.UNKNOWN
            summaries.append(r.summary)
        assert summaries[:HUNG.limit] == ["timed out after 0.2s"] * HUNG.limit
        assert all(s.startswith("previous run still hung") for s in summaries[HUNG.limit:])
        assert stuck_threads() == HUNG.limit
        assert HUNG.counts()["robust.stuck"]["alive"] == HUNG.limit
        record = run_playbook(pb, ListInventory([local()]), plugins, history)
        assert record.meta["hung_checks"]["robust.stuck"]["alive"] == HUNG.limit
    finally:
        RELEASE.set()
    wait_for(lambda: stuck_threads() == 0)
    (r,) = run_playbook(pb, ListInventory([local()]), plugins, history).results
    assert r.status is Status.OK and r.summary == "released"
