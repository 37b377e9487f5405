"""``upkeeper validate`` finds what a run would reject, all of it at once, with file:line
and a hint: real processes, real plugin loading (a broken plugin is a real package)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.core.test_cli import DAILY, upk


def validate(*args: str, env: dict[str, str] | None = None):
    return upk("validate", *args, env=env)


def errors(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("upkeeper: error: ")]


def test_jinja_syntax_errors_in_params_and_when(tmp_path):
    book = tmp_path / "pb.yml"
    book.write_text(
        "name: syntax\n"
        "checks:\n"
        "  - system.command: {command: 'echo {{ name '}\n"
        "  - check: system.command\n"
        "    params:\n"
        "      command: echo ok\n"
        "      env: {A: '{% if x %}'}\n"
        "  - check: system.uptime\n"
        "    when: ansible_os_family ==\n")
    res = validate(str(book))
    assert res.returncode == 3, res.stdout + res.stderr
    errs = errors(res)
    assert len(errs) == 3, res.stderr
    assert f"{book}:3:" in errs[0] and "template syntax error" in errs[0]
    assert f"{book}:7:" in errs[1] and "template syntax error" in errs[1]
    assert f"{book}:9:" in errs[2] and "when: syntax error" in errs[2]
    # a run refuses it before contacting any host, too
    assert upk("run", str(book)).returncode == 3


def test_all_param_errors_at_once_with_did_you_mean(tmp_path):
    book = tmp_path / "pb.yml"
    book.write_text("name: params\nchecks:\n"
                    "  - system.uptime: {warn_dayz: 3}\n"
                    "  - disk.usage: {warn_pct: lots}\n")
    res = validate(str(book))
    assert res.returncode == 3
    errs = errors(res)
    assert len(errs) == 2, res.stderr
    assert f"{book}:3:" in errs[0] and "did you mean 'warn_days'?" in errs[0]
    assert f"{book}:4:" in errs[1] and "warn_pct" in errs[1]


def test_did_you_mean_for_top_level_keys(tmp_path):
    book = tmp_path / "pb.yml"
    book.write_text("name: keys\nhots: web\nchecks: [system.uptime]\n")
    res = validate(str(book))
    assert res.returncode == 3
    assert "unknown key 'hots' (did you mean 'hosts'?)" in res.stderr
    assert f"{book}:2:" in res.stderr


def test_did_you_mean_for_limit_patterns(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("[webservers]\nlocalhost ansible_connection=local\n")
    res = upk("run", DAILY, "-i", str(inv), "--limit", "webserver")
    assert res.returncode == 3
    assert "nothing matches 'webserver' (did you mean 'webservers'?)" in res.stderr
    res = validate(DAILY, "-i", str(inv), "--limit", "webservers:dbservers")
    assert res.returncode == 0, res.stderr
    assert "nothing matches 'dbservers'" in res.stderr


def test_checks_of_a_plugin_that_failed_to_load_are_an_error(tmp_path):
    site = tmp_path / "site"
    dist = site / "upkeeper_broken-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: upkeeper-broken\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text("[upkeeper]\nbroken = upkeeper_broken\n")
    (site / "upkeeper_broken.py").write_text("raise RuntimeError('missing dependency foo')\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site),
                                                       os.environ.get("PYTHONPATH")]))}
    book = tmp_path / "pb.yml"
    book.write_text("name: broken\nchecks:\n  - system.uptime\n  - broken.thing\n")
    res = validate(str(book), env=env)
    assert res.returncode == 3, res.stdout + res.stderr
    assert f"{book}:4:" in res.stderr
    assert "check 'broken.thing' is not available" in res.stderr
    assert "missing dependency foo" in res.stderr


def test_bad_ansible_port_names_host_and_source(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("[web]\nlocalhost ansible_connection=local\n"
                   "other ansible_connection=local ansible_port=ssh\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "localhost.yml").write_text("x: 1\nansible_port: 70000\n")
    res = validate(DAILY, "-i", str(inv))
    assert res.returncode == 3
    errs = errors(res)
    assert any("host localhost: ansible_port 70000 is not a port number" in e
               and "host_vars/localhost.yml" in e for e in errs), errs
    assert any("host other: ansible_port 'ssh' is not a port number" in e
               and f"{inv}:3" in e for e in errs), errs


def test_notify_templates(tmp_path):
    tdir = tmp_path / "templates"
    tdir.mkdir()
    (tdir / "notification.txt.j2").write_text("Hello\n{% for a in alerts %}\n{{ a.host }\n")
    book = tmp_path / "pb.yml"
    book.write_text("name: notify\nchecks: [system.uptime]\nnotify:\n"
                    f"  template_dir: {tdir}\n"
                    "  channels:\n"
                    "    - webhook: {url: 'https://example.invalid/hook'}\n")
    res = validate(str(book))
    assert res.returncode == 3, res.stdout + res.stderr
    assert f"{tdir}/notification.txt.j2:3: notify template syntax error" in res.stderr
    (tdir / "notification.txt.j2").write_text("Hello {{ subject }}\n")
    assert validate(str(book)).returncode == 0
    book.write_text(book.read_text().replace("/hook'", "/{{ client'"))
    res = validate(str(book))
    assert res.returncode == 3, res.stdout + res.stderr
    assert f"{book}:6:" in res.stderr and "notify: template syntax error" in res.stderr


def test_validate_a_playbook_directory(tmp_path):
    books = tmp_path / "playbooks"
    (books / "client-a").mkdir(parents=True)
    good = books / "daily.yml"
    good.write_text(Path(DAILY).read_text())
    bad = books / "client-a" / "backups.yaml"
    bad.write_text("name: bad\nchecks:\n  - system.uptme\n")
    (books / "README.md").write_text("not a playbook\n")
    res = validate(str(books))
    assert res.returncode == 3
    assert f"{good}: OK (6 checks, 1 hosts)" in res.stdout
    assert f"{bad}:3:" in res.stderr and "did you mean system.uptime" in res.stderr
    doc = json.loads(validate(str(books), "--format", "json").stdout)
    assert doc["exit_code"] == 3
    assert [(p["path"], p["ok"]) for p in doc["playbooks"]] == [(str(bad), False),
                                                                (str(good), True)]
    bad.unlink()
    res = validate(str(books))
    assert res.returncode == 0, res.stderr
