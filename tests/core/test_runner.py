"""The runner turns every failure into a Result and keeps going."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.core.helpers import DownTransport, ListInventory, TestPlugin
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import preflight, run_playbook
from upkeeper.models import Host, Result, Status
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History


@pytest.fixture
def plugins():
    return get_plugin_manager(extra_plugins=[("testplugin", TestPlugin())])


def local(name: str = "localhost", **vars: object) -> Host:
    return Host(name, vars={"ansible_connection": "local", **vars}, groups=["all"])


def write_pb(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "pb.yml"
    p.write_text(body)
    return p


def test_failures_become_unknown_and_the_rest_completes(tmp_path, plugins):
    pb = load_playbook(write_pb(tmp_path, """
name: mixed
hosts: all
checks:
  - test.echo: {text: first}
  - test.boom
  - name: sleepy
    check: test.hang
    timeout: 0.3
  - test.echo: {text: last}
"""), plugins.registry)
    hosts = [local("a"), Host("down1", vars={"ansible_connection": "down"}), local("b")]
    history = History(tmp_path / "h.db")
    t0 = time.monotonic()
    run = run_playbook(pb, ListInventory(hosts), plugins, history)
    assert time.monotonic() - t0 < 10
    by = {(r.host, r.name): r for r in run.results}
    assert len(run.results) == 12
    for h in ("a", "b"):
        assert by[(h, "test.echo")].status is Status.OK
        assert by[(h, "test.boom")].status is Status.UNKNOWN
        assert "RuntimeError: kaboom" in by[(h, "test.boom")].summary
        assert by[(h, "sleepy")].status is Status.UNKNOWN
        assert "timed out after 0.3s" in by[(h, "sleepy")].summary
    # after the last echo on the same host the transport was replaced and still works
    assert [r.summary for r in run.results if r.host == "a"][-1] == "said last"
    down = [r for r in run.results if r.host == "down1"]
    assert len(down) == 4 and all(r.status is Status.UNKNOWN for r in down)
    assert "connection refused" in down[0].summary
    assert DownTransport.opened >= 1
    assert run.status is Status.UNKNOWN and run.exit_code == 3
    stored = History(tmp_path / "h.db").get_run(run.run_id)
    assert stored is not None and len(stored.results) == 12
    assert stored.finished is not None


def test_results_are_stored_as_they_land(tmp_path, plugins):
    pb = load_playbook(write_pb(tmp_path, """
name: slow second
hosts: all
checks:
  - test.echo
  - test.hang: {seconds: 5}
"""), plugins.registry)
    history = History(tmp_path / "h.db")
    seen: list[Result] = []
    stop = threading.Event()

    def on_result(r: Result) -> None:
        seen.append(r)
        # the first result is committed before the second check finishes
        assert History(tmp_path / "h.db").results(host="localhost")[0].summary == r.summary
        stop.set()

    run = run_playbook(pb, ListInventory([local()]), plugins, history,
                       on_result=on_result, stop_event=stop)
    assert seen[0].status is Status.OK
    assert run.interrupted or any("interrupted" in r.summary or "timed out" in r.summary
                                  for r in run.results)


def test_stop_event_records_what_finished(tmp_path, plugins):
    pb = load_playbook(write_pb(tmp_path, """
name: stop
hosts: all
checks: [test.echo, test.echo]
forks: 1
"""), plugins.registry)
    stop = threading.Event()
    stop.set()
    run = run_playbook(pb, ListInventory([local("a"), local("b")]), plugins,
                       History(tmp_path / "h.db"), stop_event=stop)
    assert run.interrupted
    assert all(r.status is Status.UNKNOWN and "interrupted" in r.summary for r in run.results)
    assert {r.host for r in run.results} == {"a", "b"}


def test_params_are_templated_per_host_and_secrets_masked(tmp_path, plugins, monkeypatch):
    monkeypatch.setenv("UPK_TEST_TOKEN", "s3cr3t-token")
    pb = load_playbook(write_pb(tmp_path, """
name: templated
hosts: all
checks:
  - test.echo:
      text: "{{ greeting }} from {{ inventory_hostname }}"
      count: "{{ n }}"
      secret: "{{ api_token }}"
"""), plugins.registry)
    hosts = [local("a", greeting="hi", n=3, api_token="{{ env.UPK_TEST_TOKEN }}")]
    history = History(tmp_path / "h.db")
    run = run_playbook(pb, ListInventory(hosts), plugins, history)
    (r,) = run.results
    assert r.status is Status.OK, r.summary
    assert r.summary == "said hi from a with ********"
    assert r.metrics == {"count": 3}
    raw = (tmp_path / "h.db").read_bytes()
    assert b"s3cr3t-token" not in raw


def test_undefined_variable_found_before_running(tmp_path, plugins):
    path = write_pb(tmp_path, """
name: undefined
hosts: all
checks:
  - test.echo
  - test.echo:
      text: "{{ nope }}"
""")
    pb = load_playbook(path, plugins.registry)
    problems = preflight(pb, [local("web1")])
    assert len(problems) == 1
    assert f"{path}:7:" in problems[0]
    assert "undefined variable 'nope'" in problems[0] and "web1" in problems[0]
    # the runner itself reports it per host instead of crashing
    run = run_playbook(pb, ListInventory([local("web1")]), plugins, History(":memory:"))
    assert run.results[0].status is Status.OK
    assert run.results[1].status is Status.UNKNOWN and "nope" in run.results[1].summary


def test_when_and_platform_skip(tmp_path, plugins):
    pb = load_playbook(write_pb(tmp_path, """
name: skips
hosts: all
checks:
  - name: only debian
    check: test.echo
    when: facts.distro == "no-such-distro"
  - system.uptime
"""), plugins.registry)
    win = Host("w", vars={"ansible_connection": "local", "os_family": "windows"})
    run = run_playbook(pb, ListInventory([local("l"), win]), plugins, History(":memory:"))
    by = {(r.host, r.name): r for r in run.results}
    assert by[("l", "only debian")].status is Status.SKIPPED
    assert by[("l", "system.uptime")].status is Status.OK
    assert run.exit_code == 0


def test_facts_are_gathered_once_and_lazily(tmp_path, plugins):
    pb = load_playbook(write_pb(tmp_path, """
name: facts
hosts: all
checks: [test.facts, test.facts, test.echo]
"""), plugins.registry)
    run = run_playbook(pb, ListInventory([local()]), plugins, History(":memory:"))
    assert run.results[0].summary.startswith("distro=")
    assert run.results[0].summary == run.results[1].summary


def test_actions_honour_check_mode(tmp_path, plugins):
    pb = load_playbook(write_pb(tmp_path, "name: a\nchecks: [test.change]\n"), plugins.registry)
    inv = ListInventory([local()])
    assert run_playbook(pb, inv, plugins, History(":memory:"),
                        check_mode=True).results[0].changed is False
    assert run_playbook(pb, inv, plugins, History(":memory:"),
                        allow_anytime=True).results[0].changed is True


def test_hooks_observe_results_and_runs(tmp_path):
    from upkeeper import hookimpl

    seen: dict[str, list] = {"results": [], "runs": []}

    class Observer:
        @hookimpl
        def upkeeper_result(self, result):
            seen["results"].append(result.check)

        @hookimpl
        def upkeeper_run_finished(self, run):
            seen["runs"].append(run.status)

    class Broken:
        @hookimpl
        def upkeeper_run_finished(self, run):
            raise ValueError("observer bug")

    plugins = get_plugin_manager(extra_plugins=[("t", TestPlugin()), ("obs", Observer()),
                                                ("broken", Broken())])
    pb = load_playbook(write_pb(tmp_path, "name: h\nchecks: [test.echo]\n"), plugins.registry)
    run = run_playbook(pb, ListInventory([local()]), plugins, History(":memory:"))
    assert seen == {"results": ["test.echo"], "runs": [Status.OK]}
    assert run.status is Status.OK
    broken = next(p for p in plugins.plugins if p.name == "broken")
    assert "observer bug" in broken.errors[0]


def test_when_comparing_facts_of_the_wrong_type_is_a_result_not_a_crash(tmp_path, plugins):
    pb = load_playbook(write_pb(tmp_path, """
name: typed when
checks:
  - name: build check
    check: test.echo
    when: facts.kernel >= 17763
"""), plugins.registry)
    assert preflight(pb, [local()]) == []
    run = run_playbook(pb, ListInventory([local()]), plugins, History(":memory:"))
    (r,) = run.results
    assert r.status is Status.UNKNOWN and "TypeError" in r.summary


def test_serial_batches_stop_at_max_fail_percentage(tmp_path, plugins):
    pb = load_playbook(write_pb(tmp_path, """
name: waves
serial: 2
max_fail_percentage: 40
checks: [test.echo]
"""), plugins.registry)
    down = {"ansible_connection": "down"}
    hosts = [local("a"), Host("b", vars=down), local("c"), local("d"), local("e")]
    run = run_playbook(pb, ListInventory(hosts), plugins, History(":memory:"))
    by = {r.host: r for r in run.results}
    assert by["a"].status is Status.OK and by["b"].status is Status.UNKNOWN
    for h in ("c", "d", "e"):
        assert by[h].status is Status.SKIPPED
        assert "1 of 2 hosts failed in batch 1 (50% > max_fail_percentage 40%)" in by[h].summary
    assert run.meta["aborted"]


def test_serial_percentage_runs_every_batch_when_healthy(tmp_path, plugins):
    pb = load_playbook(write_pb(tmp_path, """
name: waves
serial: "34%"
max_fail_percentage: 0
checks: [test.echo]
"""), plugins.registry)
    # Ansible's pct_to_int truncates: 34% of 5 hosts is 1.7 -> 1
    assert [len(b) for b in pb.batches(list(range(5)))] == [1] * 5
    hosts = [local(n) for n in "abcde"]
    run = run_playbook(pb, ListInventory(hosts), plugins, History(":memory:"))
    assert [r.status for r in run.results] == [Status.OK] * 5


def test_actions_wait_for_maintenance_windows_unless_forced(tmp_path, plugins):
    from datetime import datetime, timedelta, timezone

    start = datetime.now(timezone.utc) + timedelta(hours=3)
    end = start + timedelta(hours=1)
    window = f"daily {start:%H:%M}-{end:%H:%M}"
    pb = load_playbook(write_pb(tmp_path, "name: a\nchecks: [test.change]\n"), plugins.registry)
    inv = ListInventory([local(maintenance_windows=[window], timezone="UTC")])
    (r,) = run_playbook(pb, inv, plugins, History(":memory:")).results
    assert r.status is Status.SKIPPED and "outside maintenance window" in r.summary
    assert "next window starts" in r.summary and not r.changed
    (r,) = run_playbook(pb, inv, plugins, History(":memory:"), force=True).results
    assert r.changed and r.summary == "changed [forced: outside maintenance window]"
    now = datetime.now(timezone.utc)
    inside = f"daily {now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}"
    inv = ListInventory([local(maintenance_windows=[inside], timezone="UTC")])
    (r,) = run_playbook(pb, inv, plugins, History(":memory:")).results
    assert r.changed and r.summary == "changed"


def test_checks_returning_no_results_or_wrong_types_are_unknown(tmp_path, plugins):
    pb = load_playbook(write_pb(tmp_path, "name: s\nchecks: [test.sloppy]\n"), plugins.registry)
    run = run_playbook(pb, ListInventory([local("str"), local("empty")]), plugins,
                       History(":memory:"))
    by = {r.host: r for r in run.results}
    assert by["str"].status is Status.UNKNOWN
    assert by["str"].summary == "check returned str instead of Result"
    assert by["empty"].status is Status.UNKNOWN
    assert by["empty"].summary == "check returned no result"


@pytest.mark.parametrize(("serial", "hosts", "sizes"), [
    ("25%", 10, [2, 2, 2, 2, 2]),   # Ansible: int(0.25 * 10) = 2, not 3
    ("1%", 10, [1] * 10),           # never 0: at least one host
    ("50%", 5, [2, 2, 1]),
    ("29%", 100, [28, 28, 28, 16]),  # float arithmetic as in Ansible: 0.29 * 100 = 28.99..
    ("100%", 3, [3]),
    (4, 10, [4, 4, 2]),
])
def test_serial_batches_match_ansible(tmp_path, plugins, serial, hosts, sizes):
    value = f'"{serial}"' if isinstance(serial, str) else serial
    pb = load_playbook(write_pb(tmp_path, f"name: s\nserial: {value}\nchecks: [test.echo]\n"),
                       plugins.registry)
    assert [len(b) for b in pb.batches(list(range(hosts)))] == sizes
