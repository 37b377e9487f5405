"""Inventory data is never code: classic Jinja2 SSTI payloads in host vars run nothing at
``validate``, ``run`` or in the daemon, and rendered values are never rendered again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.core.helpers import ListInventory, TestPlugin
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.engine.templating import TemplateError, render_value
from upkeeper.inventory.loader import load_inventory
from upkeeper.models import Host, Status
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History

ROOT = Path(__file__).resolve().parents[2]


def payloads(marker: Path) -> dict[str, str]:
    """Each writes ``marker.N`` if it manages to run a shell command."""
    cmd = f"id > {marker}"
    return {
        "p_cycler": f"{{{{ cycler.__init__.__globals__.os.popen('{cmd}.1').read() }}}}",
        "p_joiner": f"{{{{ joiner.__init__.__globals__.os.popen('{cmd}.2').read() }}}}",
        "p_namespace": f"{{{{ namespace.__init__.__globals__.os.popen('{cmd}.3').read() }}}}",
        "p_lipsum": f"{{{{ lipsum.__globals__['os'].popen('{cmd}.4').read() }}}}",
        "p_self": (f"{{{{ self.__init__.__globals__.__builtins__.__import__('os')"
                   f".popen('{cmd}.5').read() }}}}"),
        "p_mro": ("{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
                  "{% if c.__name__ == 'Popen' %}"
                  f"{{{{ c('{cmd}.6', shell=True).wait() }}}}"
                  "{% endif %}{% endfor %}"),
        "p_request": (f"{{{{ request.application.__globals__.__builtins__.__import__('os')"
                      f".popen('{cmd}.7').read() }}}}"),
        "p_env": (f"{{{{ env.__class__.__getitem__.__globals__['os']"
                  f".popen('{cmd}.8').read() }}}}"),
        "p_format": "{{ '{0.__class__.__init__.__globals__}'.format(env) }}",
    }


def write_inventories(tmp: Path, marker: Path) -> dict[str, Path]:
    p = payloads(marker)
    yml = tmp / "inv.yml"
    yml.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   + "".join(f"      {k}: {json.dumps(v)}\n" for k, v in p.items()))
    ini = tmp / "inv.ini"
    ini.write_text("[all]\nlocalhost ansible_connection=local\n[all:vars]\n"
                   + "".join(f"{k}={v}\n" for k, v in p.items()))
    return {"yml": yml, "ini": ini}


def write_books(tmp: Path, names: list[str]) -> tuple[Path, Path]:
    quiet = tmp / "quiet.yml"
    quiet.write_text("name: references nothing\nchecks:\n  - system.command: {command: 'true'}\n")
    loud = tmp / "loud.yml"
    loud.write_text("name: references every payload\nschedule: {every: day}\nchecks:\n"
                    + "".join(f"  - name: {n}\n    check: system.command\n"
                              f"    params: {{command: 'echo \"{{{{ {n} }}}}\"'}}\n"
                              for n in names))
    return quiet, loud


def upk(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upkeeper", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=dict(os.environ))


def ran(marker: Path) -> list[str]:
    return sorted(p.name for p in marker.parent.glob(marker.name + "*"))


@pytest.mark.parametrize("fmt", ["yml", "ini"])
def test_payloads_run_nothing_at_validate_and_run(tmp_path, fmt):
    marker = tmp_path / "pwned"
    inv = write_inventories(tmp_path, marker)[fmt]
    names = sorted(load_inventory([inv]).hosts["localhost"].vars.keys() - {"ansible_connection"})
    assert len(names) >= 5
    quiet, loud = write_books(tmp_path, names)

    res = upk("validate", str(quiet), "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = upk("run", str(quiet), "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 0, res.stderr + res.stdout

    res = upk("validate", str(loud), "-i", str(inv), cwd=tmp_path)
    assert res.returncode == 3
    for n in names:
        assert f"host var '{n}' ({inv}:" in res.stderr, (n, res.stderr)

    res = upk("run", str(loud), "-i", str(inv), "--format", "json", cwd=tmp_path)
    doc = json.loads(res.stdout)
    by = {r["name"]: r for r in doc["results"]}
    assert set(by) == set(names)
    for n in names:
        assert by[n]["status"] == "UNKNOWN", by[n]
        assert f"host var '{n}'" in by[n]["summary"]
        assert "unsafe" in by[n]["summary"] or "undefined" in by[n]["summary"], by[n]
    assert ran(marker) == []


def test_payloads_run_nothing_in_the_daemon(tmp_path):
    from upkeeper.cli.serve import PlaybookDir
    from upkeeper.schedule.slots import Slot

    marker = tmp_path / "pwned"
    inv = write_inventories(tmp_path, marker)["yml"]
    books = tmp_path / "books"
    books.mkdir()
    write_books(books, sorted(payloads(marker)))
    history = History(tmp_path / "h.db")
    source = PlaybookDir(books, (str(inv),), get_plugin_manager, history)
    loaded = source()
    assert loaded.errors == {}
    job = loaded.jobs["loud.yml"]
    now = datetime.now(timezone.utc)
    run = source.run(job, Slot(job.key, 0, now, now, run_id="r1"), threading.Event())
    assert run is not None and len(run.results) == len(payloads(marker))
    assert all(r.status is Status.UNKNOWN for r in run.results)
    assert ran(marker) == []


@pytest.fixture
def plugins():
    return get_plugin_manager(extra_plugins=[("testplugin", TestPlugin())])


def echo_book(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "pb.yml"
    p.write_text(f"name: echo\nchecks:\n  - test.echo: {{text: {json.dumps(text)}}}\n")
    return p


def test_unsafe_value_stays_literal_when_another_var_refers_to_it(tmp_path, plugins):
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   "      raw: !unsafe '{{ 7*7 }}'\n"
                   "      wrapper: '{{ raw }}'\n"
                   "      wrapper2: 'x {{ wrapper }} y'\n")
    pb = load_playbook(echo_book(tmp_path, "{{ wrapper2 }}"), plugins.registry)
    run = run_playbook(pb, load_inventory([inv]), plugins, History(":memory:"))
    assert [r.summary for r in run.results] == ["said x {{ 7*7 }} y"]


def test_values_from_the_environment_are_never_rendered(tmp_path, plugins, monkeypatch):
    monkeypatch.setenv("UPK_T_TRICK", "{{ 7*7 }}{% if true %}!{% endif %}")
    hosts = [Host("localhost", vars={"ansible_connection": "local",
                                     "from_env": "{{ env.UPK_T_TRICK }}",
                                     "chained": "{{ from_env }}"})]
    pb = load_playbook(echo_book(tmp_path, "{{ chained }}|{{ env.UPK_T_TRICK }}"),
                       plugins.registry)
    run = run_playbook(pb, ListInventory(hosts), plugins, History(":memory:"))
    literal = "{{ 7*7 }}{% if true %}!{% endif %}"
    assert [r.summary for r in run.results] == [f"said {literal}|{literal}"]


def test_vars_render_only_when_used_and_loops_are_named():
    from upkeeper.engine.variables import bind_host, scope_of

    calls: list[str] = []
    raw = Host("h", vars={"a": "{{ b }}", "b": "{{ a }}", "unused": "{{ env.UPK_T_NOPE }}",
                          "x": "{{ y }}-{{ y }}", "y": "{{ 6 * 7 }}"},
               var_origin={"a": "inv.yml:3", "b": "inv.yml:4"}.get)
    host = bind_host(raw, on_rendered=lambda name, value: calls.append(name))
    scope = scope_of(host)
    assert render_value("{{ x }}", scope) == "42-42"
    assert calls == ["y", "x"]  # y rendered once although used twice
    with pytest.raises(TemplateError, match=r"refers to itself: (a -> b -> a|b -> a -> b)"):
        render_value("{{ a }}", scope)
    assert "unused" not in calls
    assert dict.__getitem__(host.vars, "unused") == "{{ env.UPK_T_NOPE }}"
    # a var that cannot be rendered is "not defined" to templates that ask
    assert render_value("{{ a | default('fallback') }}", scope) == "fallback"


def test_host_vars_read_by_code_render_on_access(monkeypatch):
    from upkeeper.engine.templating import VarError
    from upkeeper.engine.variables import bind_host

    monkeypatch.setenv("UPK_T_SSH_PW", "pw-from-env")
    monkeypatch.delenv("UPK_T_MISSING", raising=False)
    raw = Host("h", vars={"ansible_password": "{{ env.UPK_T_SSH_PW }}", "port": "{{ 22 }}",
                          "broken": "{{ env.UPK_T_MISSING }}"},
               var_origin={"broken": "inv.yml:9"}.get)
    host = bind_host(raw)
    assert host.vars["ansible_password"] == "pw-from-env"
    assert host.vars.get("port") == 22 and host.vars.get("nope", 1) == 1
    copied = {**host.vars}  # copies render too, and a broken var does not explode here
    assert copied["ansible_password"] == "pw-from-env"
    with pytest.raises(VarError, match=r"host var 'broken' \(inv.yml:9\): environment "
                                       r"variable UPK_T_MISSING is not set"):
        str(host.vars["broken"])
    host.vars["port"] = "{{ not rendered }}"
    assert host.vars["port"] == "{{ not rendered }}"


@pytest.mark.parametrize(("text", "want"), [
    ("{{ 22 }}", 22), ("{{ n }}", 7), ("{{ [1, 2] }}", [1, 2]), ("{{ s }}", "0x1F"),
    ("{{ '12345' }}", "12345"), ("a{{ n }}", "a7"), ("{{ s }}{{ n }}", "0x1F7"),
    ("{% if true %}5{% endif %}", "5"),
])
def test_types_are_kept_only_for_a_lone_expression(text, want):
    got = render_value(text, {"n": 7, "s": "0x1F"})
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize("text", ["{{ 'a' * 10**9 }}", "{{ [0] * 10**9 }}",
                                  "{{ 7 ** 100000000 }}", "{{ range(10**9) | list }}"])
def test_templates_cannot_eat_memory(text):
    with pytest.raises(TemplateError, match=r"too large|Range too big"):
        render_value(text, {})
