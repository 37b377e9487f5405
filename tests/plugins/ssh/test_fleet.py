"""Several inventory hosts (aliases of one sshd) through the real runner and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from upkeeper_ssh.testserver import SSHServer

pytestmark = pytest.mark.sshd

PLAYBOOK = {
    "name": "ssh fleet",
    "hosts": "fleet",
    "checks": [
        {"system.uptime": {"warn_days": 100000}},
        {"name": "disk", "check": "system.command", "params": {"command": "df -P"}},
        {"name": "os-release", "check": "system.command",
         "params": {"command": "cat /etc/os-release"}},
    ],
}


def write_fleet(tmp_path: Path, sshd: SSHServer, known_hosts: Path, count: int,
                extra_host: dict[str, dict[str, object]] | None = None) -> tuple[Path, Path]:
    hosts: dict[str, dict[str, object]] = {f"node{i:02d}": {} for i in range(count)}
    hosts.update(extra_host or {})
    inventory = {"all": {"children": {"fleet": {
        "hosts": hosts,
        "vars": {
            "ansible_host": "127.0.0.1", "ansible_port": sshd.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(sshd.client_key),
            "ssh_known_hosts_file": str(known_hosts),
        },
    }}}}
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(inventory))
    pb = tmp_path / "playbook.yml"
    pb.write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
    return inv, pb


def test_runner_many_hosts_one_connection_each(tmp_path: Path, sshd: SSHServer,
                                                known_hosts: Path) -> None:
    pytest.importorskip("upkeeper.engine.runner")
    from upkeeper.engine.playbook import load_playbook
    from upkeeper.engine.runner import run_playbook
    from upkeeper.inventory.loader import load_inventory
    from upkeeper.plugins import get_plugin_manager
    from upkeeper.store.history import History

    bad_kh = tmp_path / "empty_known_hosts"
    bad_kh.write_text("")
    inv_path, pb_path = write_fleet(tmp_path, sshd, known_hosts, 8, {
        "stranger": {"ssh_known_hosts_file": str(bad_kh)}})
    plugins = get_plugin_manager()
    before = sshd.log_text().count("Connection from")
    run = run_playbook(load_playbook(pb_path, plugins.registry), load_inventory([inv_path]),
                       plugins, History(tmp_path / "h.db"), forks=4)
    by_host: dict[str, list[str]] = {}
    for r in run.results:
        by_host.setdefault(r.host, []).append(r.status.value)
    assert len(by_host) == 9
    for name, statuses in by_host.items():
        if name == "stranger":
            assert statuses == ["UNKNOWN"] * 3
        else:
            assert statuses == ["OK"] * 3, (name, [r.summary for r in run.results
                                                   if r.host == name])
    stranger = [r.summary for r in run.results if r.host == "stranger"]
    assert "host key for stranger is not known" in stranger[0]
    # one connection per host (the stranger's is refused after the key exchange)
    assert sshd.log_text().count("Connection from") - before == 9


@pytest.mark.slow
def test_cli_run_json(tmp_path: Path, sshd: SSHServer, known_hosts: Path) -> None:
    inv, pb = write_fleet(tmp_path, sshd, known_hosts, 5)
    proc = subprocess.run(
        [sys.executable, "-m", "upkeeper", "run", str(pb), "-i", str(inv), "--format", "json"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    results = doc["results"]
    assert len(results) == 5 * 3
    assert {r["status"] for r in results} == {"OK"}
    assert {r["host"] for r in results} == {f"node{i:02d}" for i in range(5)}
    assert "Traceback" not in proc.stderr


def test_password_from_environment_never_stored(tmp_path: Path, sshd: SSHServer,
                                                known_hosts: Path, password_user: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("upkeeper.engine.runner")
    from tests.plugins.ssh.conftest import PASSWORD
    from upkeeper.engine.playbook import load_playbook
    from upkeeper.engine.runner import run_playbook
    from upkeeper.inventory.loader import load_inventory
    from upkeeper.plugins import get_plugin_manager
    from upkeeper.store.history import History

    wrong = "Wrong-Env-Pass-77"
    monkeypatch.setenv("UPK_SSH_TEST_PW", PASSWORD)
    monkeypatch.setenv("UPK_SSH_WRONG_PW", wrong)
    creds = {"ansible_user": password_user, "ansible_ssh_private_key_file": ""}
    inv_path, pb_path = write_fleet(tmp_path, sshd, known_hosts, 0, {
        "good": {**creds, "ansible_password": "{{ env.UPK_SSH_TEST_PW }}"},
        "bad": {**creds, "ansible_password": "{{ env.UPK_SSH_WRONG_PW }}"},
    })
    plugins = get_plugin_manager()
    db = tmp_path / "history.db"
    run = run_playbook(load_playbook(pb_path, plugins.registry), load_inventory([inv_path]),
                       plugins, History(db), forks=2)
    statuses = {(r.host, r.status.value) for r in run.results}
    assert statuses == {("good", "OK"), ("bad", "UNKNOWN")}
    bad = [r.summary for r in run.results if r.host == "bad"]
    assert "authentication as upk-ssh-pw failed (tried password)" in bad[0]
    stored = db.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("history.db*"))
    for secret in (PASSWORD, wrong):
        assert secret.encode() not in stored
        assert all(secret not in r.summary for r in run.results)
