"""Secrets reach checks byte for byte: no number, bool or quote parsing on the way, and
one host's missing secret stops only the checks that use it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from tests.core.helpers import ListInventory
from upkeeper import Check, CheckContext, Host, Params, Result, Status, hookimpl
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import preflight, run_playbook
from upkeeper.inventory.loader import load_inventory
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History

#: What real restic repositories used as passwords (issue 14): 1 of 7 survived before.
PASSWORDS = ["0x1F", "12345", "1_000", "True", "'quoted'", "p{%w", "plain-Pass_w0rd",
             "None", "[1, 2]", " padded ", "{{ 7*7 }}"]


class CaptureParams(Params):
    value: str = ""
    secret: SecretStr | None = None
    number: int = 0


class Capture(Check[CaptureParams]):
    """Remembers the params it got (a real check would use them)."""

    name = "test.capture"
    Params = CaptureParams
    platforms = ("*",)
    seen: ClassVar[dict[str, CaptureParams]] = {}

    def run(self, ctx: CheckContext[CaptureParams]) -> Result:
        Capture.seen[ctx.host.name] = ctx.params
        return Result(Status.OK, "captured")


class CapturePlugin:
    @hookimpl
    def upkeeper_register_checks(self) -> list[type[Any]]:
        return [Capture]


@pytest.fixture
def plugins():
    Capture.seen.clear()
    return get_plugin_manager(extra_plugins=[("capture", CapturePlugin())])


def book(tmp_path: Path, params: dict[str, str], name: str = "pb.yml") -> Path:
    p = tmp_path / name
    body = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in params.items())
    p.write_text(f"name: capture\nchecks:\n  - test.capture:\n{body}")
    return p


def test_passwords_from_env_and_vars_arrive_unchanged(tmp_path, plugins, monkeypatch):
    hosts = []
    for i, pw in enumerate(PASSWORDS):
        monkeypatch.setenv(f"UPK_T_PW{i}", pw)
        hosts.append(Host(f"h{i}", vars={"ansible_connection": "local",
                                         "pw": f"{{{{ env.UPK_T_PW{i} }}}}",
                                         "via": "{{ pw }}", "n": "7"}))
    pb = load_playbook(book(tmp_path, {"value": "{{ via }}", "secret": "{{ pw }}",
                                       "number": "{{ n }}"}), plugins.registry)
    run = run_playbook(pb, ListInventory(hosts), plugins, History(":memory:"))
    assert {r.status for r in run.results} == {Status.OK}, [r.summary for r in run.results]
    for i, pw in enumerate(PASSWORDS):
        got = Capture.seen[f"h{i}"]
        assert got.value == pw
        assert got.secret is not None and got.secret.get_secret_value() == pw
        assert got.number == 7  # a declared int is still converted, by pydantic


def test_password_straight_from_env_in_a_param(tmp_path, plugins, monkeypatch):
    hosts = []
    for i, pw in enumerate(PASSWORDS):
        monkeypatch.setenv(f"UPK_T_PW{i}", pw)
        hosts.append(Host(f"h{i}", vars={"ansible_connection": "local", "i": i}))
    pb = load_playbook(book(tmp_path, {"value": "{{ env['UPK_T_PW%d' % i] }}"}),
                       plugins.registry)
    run_playbook(pb, ListInventory(hosts), plugins, History(":memory:"))
    assert [Capture.seen[f"h{i}"].value for i in range(len(PASSWORDS))] == PASSWORDS


def write_clients(tmp_path: Path) -> Path:
    inv = tmp_path / "clients.yml"
    inv.write_text("""all:
  vars:
    ansible_connection: local
  children:
    acme:
      hosts:
        acme-nas:
          restic_password: "{{ env.UPK_T_ACME_PW }}"
    globex:
      hosts:
        globex-nas:
          restic_password: "{{ env.UPK_T_GLOBEX_PW }}"
""")
    return inv


def test_one_clients_missing_secret_stops_only_its_checks(tmp_path, plugins, monkeypatch):
    monkeypatch.setenv("UPK_T_ACME_PW", "acme-pw-1")
    monkeypatch.delenv("UPK_T_GLOBEX_PW", raising=False)
    inv = load_inventory([write_clients(tmp_path)])
    uses = load_playbook(book(tmp_path, {"secret": "{{ restic_password }}"}),
                         plugins.registry)
    other = load_playbook(book(tmp_path, {"value": "fine"}, "other.yml"), plugins.registry)

    run = run_playbook(other, inv, plugins, History(":memory:"))
    assert {r.host: r.status for r in run.results} == {"acme-nas": Status.OK,
                                                       "globex-nas": Status.OK}
    assert preflight(other, list(inv.hosts.values())) == []

    run = run_playbook(uses, inv, plugins, History(":memory:"))
    by = {r.host: r for r in run.results}
    assert by["acme-nas"].status is Status.OK
    bad = by["globex-nas"]
    assert bad.status is Status.UNKNOWN
    assert f"host var 'restic_password' ({tmp_path / 'clients.yml'}:12)" in bad.summary
    assert "environment variable UPK_T_GLOBEX_PW is not set" in bad.summary


def test_cli_run_goes_on_for_other_clients(tmp_path, monkeypatch):
    inv = write_clients(tmp_path)
    pb = tmp_path / "pb.yml"
    pb.write_text("name: x\nchecks:\n  - system.command: {command: 'echo ok'}\n"
                  "  - system.command: {command: 'echo len {{ restic_password | length }}'}\n")
    env = {**os.environ, "UPK_T_ACME_PW": "acme-pw-1"}
    env.pop("UPK_T_GLOBEX_PW", None)
    res = subprocess.run([sys.executable, "-m", "upkeeper", "run", str(pb), "-i", str(inv),
                          "--format", "json"], capture_output=True, text=True, timeout=120,
                         env=env, cwd=tmp_path)
    doc = json.loads(res.stdout)
    got = {(r["host"], r["summary"].split(" ")[0]): r["status"] for r in doc["results"]}
    assert got[("acme-nas", "ok")] == "OK"
    assert got[("acme-nas", "len")] == "OK"
    assert got[("globex-nas", "ok")] == "OK"
    missing = [r for r in doc["results"] if r["status"] == "UNKNOWN"]
    assert len(missing) == 1 and missing[0]["host"] == "globex-nas"
    assert "UPK_T_GLOBEX_PW" in missing[0]["summary"] and "clients.yml:12" in \
        missing[0]["summary"]
    assert res.returncode == 3

    res = subprocess.run([sys.executable, "-m", "upkeeper", "validate", str(pb), "-i",
                          str(inv)], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 3 and "UPK_T_GLOBEX_PW is not set" in res.stderr


def test_template_syntax_error_is_the_playbooks_error(tmp_path, plugins):
    from upkeeper.engine.playbook import PlaybookError

    path = book(tmp_path, {"value": "{{ broken"})
    with pytest.raises(PlaybookError, match=r"pb\.yml:4:.*test\.capture: template syntax error"):
        load_playbook(path, plugins.registry)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")
def test_real_restic_repository_opens_with_tricky_passwords(tmp_path, monkeypatch):
    tricky = ["0x1F", "12345", "'quoted'", "p{%w"]
    repo = tmp_path / "repo"
    base = {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": tricky[0],
            "RESTIC_CACHE_DIR": str(tmp_path / "cache")}
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("data\n")

    def restic(*args: str) -> None:
        subprocess.run(["restic", *args], env=base, check=True, capture_output=True,
                       timeout=120)

    restic("init")
    restic("backup", "--host", "nas", str(src))
    # One repository per password, each with only that key: restic derives one key per
    # command instead of trying up to four (scrypt: most of this test's time).
    repos = [repo]
    changes = []
    for i, pw in enumerate(tricky[1:], 1):
        copy = tmp_path / f"repo{i}"
        shutil.copytree(repo, copy)
        (tmp_path / f"new-pw{i}").write_text(pw)
        repos.append(copy)
        changes.append(subprocess.Popen(
            ["restic", "key", "passwd", "--new-password-file", str(tmp_path / f"new-pw{i}")],
            env={**base, "RESTIC_REPOSITORY": str(copy)}, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE))
    for proc in changes:
        assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""

    lines = ["all:\n  hosts:\n"]
    for i, pw in enumerate(tricky):
        monkeypatch.setenv(f"UPK_T_RESTIC{i}", pw)
        lines.append(f"    nas{i}:\n      ansible_connection: local\n"
                     f"      restic_repo: {repos[i]}\n"
                     f"      restic_password: '{{{{ env.UPK_T_RESTIC{i} }}}}'\n")
    (tmp_path / "inv.yml").write_text("".join(lines))
    (tmp_path / "pb.yml").write_text(f"""name: restic
checks:
  - backup.restic:
      repository: "{{{{ restic_repo }}}}"
      password: "{{{{ restic_password }}}}"
      integrity: false
      restore_sample: 0
      env: {{RESTIC_CACHE_DIR: "{tmp_path / 'cache'}"}}
""")
    plugins = get_plugin_manager()
    pb = load_playbook(tmp_path / "pb.yml", plugins.registry)
    run = run_playbook(pb, load_inventory([tmp_path / "inv.yml"]), plugins,
                       History(":memory:"))
    assert len(run.results) == len(tricky)
    for r in run.results:
        assert r.status is Status.OK, (r.host, r.summary)
