"""Core's after-run step and the plugin API it rests on: text cleaning for terminals and
messages, the typed hooks (run started, commands, report sections), registry validation,
OS family from the transport, and reports written without the notify plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from upkeeper import (
    Check,
    CheckContext,
    Host,
    Notifier,
    Params,
    ReportSection,
    Result,
    Status,
    Transport,
    hookimpl,
)
from upkeeper.after_run.text import clean_data, clean_text
from upkeeper.cli.main import main
from upkeeper.cli.plugin_commands import plugin_commands
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.models import CommandResult
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History

from .helpers import ListInventory

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ("\x1b[2J\x1b[31mred\x1b[0m \x1b]0;pwned\x07\x1b]8;;http://evil.example\x1b\\click"
           "\x1b]8;;\x1b\\ \x9b31m\u202egnp.exe\x07\x08\rdone")


def upk(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upkeeper", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd or ROOT,
                          env={**os.environ, "COLUMNS": "400"})


def test_clean_text_removes_escapes_and_controls() -> None:
    assert clean_text(HOSTILE) == "red click gnp.exedone"
    assert clean_text("a\tb\r\nc\n") == "a\tb\nc\n"
    assert clean_text("one\n two\t three", single_line=True) == "one two three"
    assert clean_text(None) == "" and clean_text(42) == "42"
    assert clean_data({"k\x1b[1m": ["v\x07", 3, {"x": "\x9d8;;u\x9c"}]}) == \
        {"k": ["v", 3, {"x": ""}]}


def test_terminal_output_carries_no_escape_sequences(tmp_path: Path) -> None:
    book = tmp_path / "pb.yml"
    payload = HOSTILE.replace("\x9b", "").replace("\\", "\\\\").encode("unicode_escape")
    book.write_text("name: hostile\nchecks:\n  - system.command:\n"
                    f"      command: \"printf '[link=http://evil.example]x[/link] %b\\\\n' "
                    f"'{payload.decode()}'\"\n")
    res = upk("run", str(book))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "red click" in res.stdout
    hist = upk("history", "-n", "5")
    assert "\x1b" not in hist.stdout
    # rich markup in a summary stays literal text, not a hyperlink or a style
    assert "[link=http://evil.example]x[/link]" in hist.stdout


class WinOnly(Transport):
    """A transport that reaches Windows hosts only, under a name core has never heard of."""

    name = "acme_winrm"
    os_families = ("windows",)

    def run(self, command: Any, timeout: float | None = None, sudo: bool = False,
            stdin: Any = None, env: Any = None) -> CommandResult:
        return CommandResult(str(command), 0, "ok")


class WindowsOnlyCheck(Check[Params]):
    name = "acme.win"
    platforms = ("windows",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        return Result(Status.OK, f"on {ctx.host.os_family}")


class Acme:
    def __init__(self) -> None:
        self.started: list[tuple[str, int, list[str]]] = []

    @hookimpl
    def upkeeper_register_transports(self) -> list[type[Transport]]:
        return [WinOnly]

    @hookimpl
    def upkeeper_register_checks(self) -> list[type[Check[Any]]]:
        return [WindowsOnlyCheck]

    @hookimpl
    def upkeeper_run_started(self, run: Any) -> None:
        self.started.append((run.run_id, len(run.results), sorted(run.hosts)))


def test_os_family_comes_from_the_transport_not_from_its_name(tmp_path: Path) -> None:
    acme = Acme()
    plugins = get_plugin_manager(load_entrypoints=False, extra_plugins=[("acme", acme)])
    book = tmp_path / "pb.yml"
    book.write_text("name: win\nchecks: [acme.win]\n")
    pb = load_playbook(book, plugins.registry)
    host = Host("dc1", {"ansible_connection": "acme_winrm"})
    run = run_playbook(pb, ListInventory([host]), plugins, History(":memory:"))
    (r,) = run.results
    assert (r.status, r.summary) == (Status.OK, "on windows")
    # models no longer guesses from transport names it happens to know
    assert Host("w", {"ansible_connection": "winrm"}).os_family == "linux"
    assert acme.started == [(run.run_id, 0, ["dc1"])]  # run_started: before any result


def command_plugin(*commands: Any) -> object:
    class Commands:
        @hookimpl
        def upkeeper_register_commands(self) -> list[Any]:
            return list(commands)
    return Commands()


def test_plugin_commands_are_checked() -> None:
    @click.command("acme-hello")
    def hello() -> None:
        click.echo("hello")

    @click.command("run")
    def hijack() -> None:
        click.echo("hijacked")

    plugins = get_plugin_manager(load_entrypoints=False, extra_plugins=[
        ("one", command_plugin(hello, "not a command")), ("two", command_plugin(hello, hijack))])
    found = plugin_commands(plugins, {"run", "validate"})
    assert found == {"acme-hello": hello}
    info = {p.name: p for p in plugins.plugins}
    assert info["one"].errors == ["registered 'not a command', which is not a named click "
                                  "command"]
    assert info["two"].errors == [
        "command 'acme-hello' is registered twice: by plugin 'one' and by plugin 'two'",
        "command 'run' is one of upkeeper's own: not added"]


def test_hostkeys_is_the_ssh_plugins_command() -> None:
    cli = CliRunner()
    res = cli.invoke(main, ["hostkeys", "--help"])
    assert res.exit_code == 0 and "scan" in res.output
    assert "hostkeys" in cli.invoke(main, ["--help"]).output
    off = cli.invoke(main, ["-p", "no:ssh", "hostkeys", "--help"])
    assert off.exit_code == 3 and "No such command 'hostkeys'" in off.output
    assert "upkeeper_ssh" not in (ROOT / "core/upkeeper/cli/main.py").read_text()


def test_registries_refuse_malformed_objects() -> None:
    sec = ReportSection("certs", "Certificates", ("acme.",))

    class BadNotifier:
        name = "pager"

    class NoModel(Notifier):
        name = "pager2"
        Params = dict  # type: ignore[assignment]

    class Broken:
        @hookimpl
        def upkeeper_register_report_sections(self) -> list[Any]:
            return [sec, {"key": "x"}]

        @hookimpl
        def upkeeper_register_notifiers(self) -> list[Any]:
            return [BadNotifier, NoModel]

        @hookimpl
        def upkeeper_register_inventory_sources(self) -> list[Any]:
            return ["psa:"]

    class Again:
        @hookimpl
        def upkeeper_register_report_sections(self) -> list[Any]:
            return [ReportSection("certs", "Certs again", ("other.",))]

    system = get_plugin_manager(load_entrypoints=False,
                                extra_plugins=[("broken", Broken()), ("again", Again())])
    reg = system.registry
    assert reg.report_sections == [sec] and reg.notifiers == {} and reg.inventory_sources == []
    info = {p.name: p for p in system.plugins}
    errors = "\n".join(info["broken"].errors)
    assert "which is not a ReportSection" in errors
    assert "which is not a Notifier" in errors
    assert "notifier 'pager2' from plugin 'broken': Params must be a pydantic model" in errors
    assert "which is not an inventory source" in errors
    assert info["again"].errors == ["report section 'certs' is registered twice: by plugin "
                                    "'broken' and by plugin 'again'"]


def test_no_notify_plugin_still_writes_the_report(tmp_path: Path) -> None:
    book = tmp_path / "pb.yml"
    book.write_text("name: reports\nchecks:\n  - system.command: {command: 'echo fine'}\n"
                    "report: {template: summary, format: md, path: 'out/{playbook}.md'}\n")
    res = upk("-p", "no:notify", "run", str(book), "--format", "json")
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "out" / "reports.md").read_text()
    assert text.startswith("# reports\n") and "system.command" in text


def test_notify_channels_without_the_notify_plugin_are_invalid(tmp_path: Path) -> None:
    book = tmp_path / "pb.yml"
    book.write_text("name: n\nchecks: [system.uptime]\nnotify:\n"
                    "  - email: {host: mx, from: a@b.example, to: c@d.example}\n")
    res = upk("-p", "no:notify", "run", str(book))
    assert res.returncode == 3
    assert res.stderr.startswith(f"upkeeper: error: {book}:4: notify: unknown notifier "
                                 "'email'")
    assert "plugins not loaded (disabled or broken): notify" in res.stderr
    assert not list((Path(os.environ["UPKEEPER_STATE_DIR"])).glob("*.sqlite3"))


def test_after_run_saves_its_outcome_on_the_run(tmp_path: Path) -> None:
    book = tmp_path / "pb.yml"
    book.write_text("name: saved\nchecks:\n  - system.command: {command: 'echo fine'}\n"
                    "report: {template: client, format: html, path: r.html}\n")
    assert upk("run", str(book)).returncode == 0
    state = Path(os.environ["UPKEEPER_STATE_DIR"])
    (meta,) = History(state / "history.sqlite3").query("SELECT meta FROM runs")
    assert json.loads(meta[0])["reports"] == [str(tmp_path / "r.html")]


class Failing(Check[Params]):
    name = "kit.failing"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        return Result(Status.CRIT, "\x1b[31mbroken\x1b[0m on purpose")


class Kit:
    @hookimpl
    def upkeeper_register_checks(self) -> list[type[Check[Any]]]:
        return [Failing]


def test_the_testing_kit_alerts_like_upkeeper_run(upkeeper_notifier: Any) -> None:
    from upkeeper.testing import run_playbook as kit_run

    run = kit_run({"name": "kit", "checks": ["kit.failing"], "notify": [{"notifier": "fake"}]},
                  plugins=[Kit(), upkeeper_notifier.plugin()])
    assert run.status is Status.CRIT
    (sent,) = upkeeper_notifier.sent
    assert sent.subject == "CRIT: localhost kit.failing: broken on purpose"
    assert "\x1b" not in sent.text and "broken on purpose" in (sent.html or "")
    assert run.meta["notifications"][0]["ok"] is True


def test_serve_runs_write_reports_and_alert(tmp_path: Path, upkeeper_notifier: Any) -> None:
    """A scheduled run goes through the same after-run step as ``upkeeper run``."""
    import threading
    from datetime import datetime, timezone

    from upkeeper.cli.serve import PlaybookDir
    from upkeeper.schedule.slots import Slot

    books = tmp_path / "books"
    books.mkdir()
    (books / "nightly.yml").write_text(
        "name: nightly\nschedule: {every: day, at: '02:00'}\nchecks: [kit.failing]\n"
        "notify: [{notifier: fake}]\n"
        f"report: {{template: summary, format: md, path: '{tmp_path}/r/{{playbook}}.md'}}\n")
    plugins = get_plugin_manager(load_entrypoints=False, extra_plugins=[
        ("kit", Kit()), ("fake", upkeeper_notifier.plugin())])
    history = History(tmp_path / "h.sqlite3")
    source = PlaybookDir(books, (), lambda: plugins, history)
    job = source().jobs["nightly.yml"]
    now = datetime.now(timezone.utc)
    record = source.run(job, Slot("nightly.yml", 0, now, now, run_id="r1"), threading.Event())
    assert record.status is Status.CRIT
    assert (tmp_path / "r" / "nightly.md").read_text().startswith("# nightly\n")
    assert [n.subject for n in upkeeper_notifier.sent] == [
        "CRIT: localhost kit.failing: broken on purpose"]


def test_an_unreachable_host_is_recorded_once_even_via_facts(tmp_path: Path) -> None:
    """Facts for a ``when:`` that cannot be gathered end the host like any transport
    failure: every check UNKNOWN, and the run knows the host was unreachable."""
    from .helpers import TestPlugin

    plugins = get_plugin_manager(load_entrypoints=False, extra_plugins=[("t", TestPlugin())])
    book = tmp_path / "pb.yml"
    book.write_text("name: down\nchecks:\n  - {check: test.echo, name: first,"
                    " when: \"facts.os_family == 'linux'\"}\n"
                    "  - {check: test.echo, name: second}\n  - {check: test.echo, name: third}\n")
    pb = load_playbook(book, plugins.registry)
    host = Host("gone", {"ansible_connection": "down", "ansible_host": "192.0.2.7"})
    run = run_playbook(pb, ListInventory([host]), plugins, History(":memory:"))
    assert [(r.name, r.status) for r in run.results] == [
        ("first", Status.UNKNOWN), ("second", Status.UNKNOWN), ("third", Status.UNKNOWN)]
    lost = run.unreachable["gone"]
    assert lost.checks == {"first", "second", "third"}
    assert "connection refused" in lost.reason and lost.status is Status.UNKNOWN
