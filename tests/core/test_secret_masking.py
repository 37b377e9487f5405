"""Secrets never leave through output: not through a child's environment, not through
another host's check, not through error messages, logs or ``inventory list``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.engine.secrets import MASK, Redactor
from upkeeper.inventory.loader import load_inventory
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History

#: Environment of the upkeeper process: what an MSP's daemon unit would hold.
CANARIES = {
    "UPK_C_SMTP_PASSWORD": "canary-smtp-pw-1",
    "UPK_C_WEBHOOK_TOKEN": "canary-hook-tok-2",
    "UPK_C_PSA_TOKEN": "canary-psa-tok-3",
    "UPK_C_ACME_RESTIC": "canary-acme-pw-4",
    "UPK_C_GLOBEX_RESTIC": "canary-globex-pw-5",
    "UPK_C_UNRELATED": "canary-unrelated-6",
}


def write_fleet(tmp_path: Path) -> tuple[Path, Path]:
    secret_file = tmp_path / "leaked.txt"
    # What a misbehaving script on acme could print: globex's password and a nested one.
    secret_file.write_text("canary-globex-pw-5 nested-db-pw-7 listed-token-8\n")
    inv = tmp_path / "inv.yml"
    inv.write_text(f"""all:
  vars:
    ansible_connection: local
  hosts:
    acme:
      restic_password: "{{{{ env.UPK_C_ACME_RESTIC }}}}"
      leak_file: {secret_file}
    globex:
      restic_password: "{{{{ env.UPK_C_GLOBEX_RESTIC }}}}"
      db: {{login: app, password: nested-db-pw-7}}
      api: [{{name: psa, token: listed-token-8}}]
""")
    pb = tmp_path / "pb.yml"
    pb.write_text("""name: leaky
hosts: acme
checks:
  - name: prints env
    check: system.command
    params: {command: "env; exit 2"}
  - name: prints a file
    check: system.command
    params: {command: "cat {{ leak_file }}; exit 2"}
notify:
  - notifier: email
    host: 127.0.0.1
    port: 1
    username: noc
    password: "{{ env.UPK_C_SMTP_PASSWORD }}"
    from: upkeeper@msp.example
    to: [noc@msp.example]
    min_status: UNKNOWN
    retries: 0
  - notifier: webhook
    url: "http://127.0.0.1:1/hook"
    headers: {Authorization: "Bearer {{ env.UPK_C_WEBHOOK_TOKEN }}",
              X-PSA: "{{ env.UPK_C_PSA_TOKEN }}"}
    min_status: UNKNOWN
    retries: 0
""")
    return inv, pb


def test_children_get_no_secrets_and_output_is_masked(tmp_path, monkeypatch, state_dir):
    for k, v in CANARIES.items():
        monkeypatch.setenv(k, v)
    inv, pb = write_fleet(tmp_path)
    res = subprocess.run([sys.executable, "-m", "upkeeper", "run", str(pb), "-i", str(inv),
                          "--format", "json"], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ), cwd=tmp_path)
    doc = json.loads(res.stdout)
    by = {r["name"]: r for r in doc["results"]}
    env_out = json.dumps(by["prints env"])
    assert "PATH=" in env_out and "TERM=dumb" in env_out  # the command did print its env
    everything = res.stdout + res.stderr + (state_dir / "history.sqlite3").read_bytes().decode(
        "utf-8", "replace")
    for value in [*CANARIES.values(), "nested-db-pw-7", "listed-token-8"]:
        assert value not in everything, value
    assert by["prints a file"]["summary"].count(MASK) == 3


def test_malformed_webhook_url_from_env_is_not_printed(tmp_path, monkeypatch, caplog):
    token = "hook-token-9-sekrit"
    monkeypatch.setenv("UPK_T_HOOK", f"hxxps://hooks.example/services/T0/B0/{token}")
    pb = tmp_path / "pb.yml"
    pb.write_text("""name: hooked
checks:
  - system.command: {command: "echo bad; exit 2"}
notify:
  - notifier: webhook
    url: "{{ env.UPK_T_HOOK }}"
    retries: 0
""")
    plugins = get_plugin_manager()
    history = History(tmp_path / "h.db")
    from upkeeper.after_run.context import RunContext
    from upkeeper.after_run.pipeline import after_run

    playbook = load_playbook(pb, plugins.registry)
    with caplog.at_level(logging.INFO):
        inventory = load_inventory(["localhost,"])
        run = run_playbook(playbook, inventory, plugins, history)
        after_run(run, RunContext.for_run(run, playbook, history, plugins, inventory=inventory))
    history.close()
    errors = json.dumps(run.meta, default=str)
    assert "cannot set up webhook" in errors  # the failure itself is recorded
    assert token not in errors and token not in caplog.text
    assert token not in (tmp_path / "h.db").read_bytes().decode("utf-8", "replace")


def test_log_records_and_tracebacks_are_masked(capsys):
    from upkeeper.cli.main import _setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        _setup_logging(2)
        Redactor(["tb-secret-value-10"])
        log = logging.getLogger("upkeeper.test")
        try:
            raise RuntimeError("auth failed for tb-secret-value-10")
        except RuntimeError as exc:
            log.debug("check raised with %s", "tb-secret-value-10", exc_info=exc)
        err = capsys.readouterr().err
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    assert "auth failed for ********" in err and "check raised with ********" in err
    assert "tb-secret-value-10" not in err


def test_json_log_lines_keep_masked_tracebacks():
    from upkeeper.cli.serve import JsonFormatter
    from upkeeper.engine.secrets import install_log_masking

    handler = install_log_masking(logging.StreamHandler())
    Redactor(["json-secret-value-11"])
    try:
        raise ValueError("json-secret-value-11")
    except ValueError as exc:
        record = logging.LogRecord("upkeeper", logging.ERROR, __file__, 1, "boom %s",
                                   ("json-secret-value-11",), (type(exc), exc, None))
    assert handler.filter(record)
    out = json.loads(JsonFormatter().format(record))
    assert out["msg"] == f"boom {MASK}" and f"ValueError: {MASK}" in out["exc"]


def test_inventory_list_masks_secret_vars_at_any_depth(tmp_path):
    inv, _ = write_fleet(tmp_path)
    cmd = [sys.executable, "-m", "upkeeper", "inventory", "list", "-i", str(inv), "--format"]
    shown = json.loads(subprocess.run([*cmd, "json"], capture_output=True, text=True,
                                      timeout=60, check=True).stdout)["_meta"]["hostvars"]
    assert shown["globex"]["db"] == {"login": "app", "password": MASK}
    assert shown["globex"]["api"] == [{"name": "psa", "token": MASK}]
    assert shown["acme"]["restic_password"] == MASK
    assert shown["acme"]["leak_file"] == str(tmp_path / "leaked.txt")
    raw = subprocess.run([*cmd, "ansible-json", "--show-secrets"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert json.loads(raw)["_meta"]["hostvars"]["globex"]["db"]["password"] == "nested-db-pw-7"


@pytest.mark.parametrize(("value", "masked"), [
    ({"db": {"password": "x1", "port": 5432}}, {"db": {"password": MASK, "port": 5432}}),
    ({"users": [{"name": "a", "api_key": "k"}]}, {"users": [{"name": "a", "api_key": MASK}]}),
    ({"secrets": {"a": "1", "b": ["2"]}}, {"secrets": {"a": MASK, "b": [MASK]}}),
    ({"password_file": "/etc/pw", "ansible_become_pass": ""},
     {"password_file": "/etc/pw", "ansible_become_pass": ""}),
])
def test_mask_by_key_name(value, masked):
    from upkeeper.engine.secrets import mask_secret_vars

    assert mask_secret_vars(value) == masked


def test_redactor_masks_longest_first_and_many_at_once():
    import secrets

    r = Redactor(["abcd", "abcdef", "a.b*", "x\ny z", "abc"])  # "abc" is too short to mask
    assert r.text("abcdefg abcdeX a.b* aXb* x\ny z abc") == (
        "********g ********eX ******** aXb* ******** abc")
    many = [secrets.token_urlsafe(12) for _ in range(3000)]
    big = Redactor(many)
    text = "an ordinary line 12345\n".join(many[::100]) + many[-1]
    masked = big.text(text)
    assert not any(s in masked for s in many)
    assert masked.count(MASK) == len(many[::100]) + 1
