"""Playbook loading: every error names file:line and says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.helpers import TestPlugin
from upkeeper.engine.playbook import Playbook, PlaybookError, load_playbook
from upkeeper.plugins import get_plugin_manager


@pytest.fixture(scope="module")
def registry():
    return get_plugin_manager(extra_plugins=[("t", TestPlugin())]).registry


def load(tmp_path: Path, text: str, registry=None) -> Playbook:
    p = tmp_path / "play.yml"
    p.write_text(text)
    return load_playbook(p, registry)


def error(tmp_path: Path, text: str, registry=None) -> str:
    with pytest.raises(PlaybookError) as exc:
        load(tmp_path, text, registry)
    return str(exc.value)


def test_short_and_long_forms(tmp_path, registry):
    pb = load(tmp_path, """name: forms
hosts: web:&linux
checks:
  - system.uptime
  - test.echo: {text: hi}
  - test.echo:
  - name: labelled
    check: test.echo
    params: {count: 2}
    when: "'web' in group_names"
    timeout: 5
""", registry)
    assert [c.check for c in pb.checks] == ["system.uptime", "test.echo", "test.echo",
                                            "test.echo"]
    assert pb.checks[1].params == {"text": "hi"}
    assert pb.checks[2].params == {}
    assert pb.checks[3].label == "labelled" and pb.checks[3].timeout == 5
    assert pb.forks == 25 and pb.hosts == "web:&linux"
    assert pb.line_of(("checks", 1, "params", "text")) == 5


def test_unknown_check_gets_did_you_mean_and_known_list(tmp_path, registry):
    msg = error(tmp_path, "name: x\nchecks:\n  - system.uptim: {}\n", registry)
    assert msg.startswith(f"{tmp_path / 'play.yml'}:3:")
    assert "unknown check 'system.uptim'" in msg
    assert "did you mean system.uptime" in msg
    assert "system.command" in msg


def test_wrongly_typed_param_names_line_and_param(tmp_path, registry):
    msg = error(tmp_path, """name: x
checks:
  - test.echo:
      text: ok
      count: many
""", registry)
    assert f"{tmp_path / 'play.yml'}:5:" in msg
    assert "param 'count'" in msg and "integer" in msg


def test_unknown_param_lists_known_params(tmp_path, registry):
    msg = error(tmp_path, "name: x\nchecks:\n  - system.uptime: {warn_dayz: 3}\n", registry)
    assert ":3:" in msg and "warn_dayz" in msg and "known params: crit_days, warn_days" in msg


def test_templated_params_are_not_type_checked_statically(tmp_path, registry):
    pb = load(tmp_path, 'name: x\nchecks:\n  - test.echo: {count: "{{ n }}"}\n', registry)
    assert pb.checks[0].params["count"] == "{{ n }}"


@pytest.mark.parametrize(("text", "where", "needle"), [
    ("name: x\nchecks: []\n", ":2:", "checks"),
    ("name: x\nhosts: all\nchecks: [system.uptime]\nforkz: 3\n", ":4:", "unknown key 'forkz'"),
    ("hosts: all\nchecks: [system.uptime]\n", ":1:", "missing required key 'name'"),
    ("name: x\nchecks: [system.uptime]\nforks: 0\n", ":3:", "forks"),
    ("name: x\nchecks:\n  - name: y\n    check: system.uptime\n    bogus: 1\n", ":5:",
     "unknown key 'bogus'"),
    ("- name: x\n", ":1", "YAML mapping"),
    ("name: x\nchecks: [\n", ":3:", "invalid YAML"),
])
def test_structural_errors(tmp_path, registry, text, where, needle):
    msg = error(tmp_path, text, registry)
    assert where in msg, msg
    assert needle in msg, msg


def test_schema_is_json_schema_with_descriptions():
    schema = Playbook.model_json_schema()
    json.dumps(schema)
    assert set(schema["required"]) == {"name", "checks"}
    assert "schedule" in schema["properties"] and "notify" in schema["properties"]


def test_example_playbooks_are_valid():
    registry = get_plugin_manager().registry
    root = Path(__file__).resolve().parents[2] / "playbooks"
    books = sorted(root.glob("*.yml"))
    assert books
    for path in books:
        load_playbook(path, registry)
