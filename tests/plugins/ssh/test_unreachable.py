"""A host that accepts TCP but never speaks SSH costs one bounded connect per run.

The server here is a real loopback listener that accepts and then stays silent (a hung
sshd, a tarpit, a port forward to nothing); it counts the connections it accepts, so the
tests assert how often upkeeper connected rather than how long it took.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
import yaml

from tests.plugins.ssh.conftest import login_user
from upkeeper import Host, Status, TransportError
from upkeeper_ssh import SSHTransport
from upkeeper_ssh.testserver import SilentServer, SSHServer


@pytest.fixture
def mute() -> Iterator[SilentServer]:
    srv = SilentServer()
    yield srv
    srv.close()


def mute_vars(mute: SilentServer, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    # Default retries on purpose: a silent server must not be retried.
    v: dict[str, Any] = {"ansible_host": "127.0.0.1", "ansible_port": mute.port,
                         "ansible_user": "root", "ansible_connection": "ssh",
                         "ansible_ssh_timeout": 1, "ansible_password": "Secret-Pw-19",
                         "ssh_known_hosts_file": str(tmp_path / "known_hosts")}
    v.update(extra)
    return v


def test_silent_server_is_unreachable_once(mute: SilentServer, tmp_path: Path) -> None:
    t = SSHTransport(Host("mute", vars=mute_vars(mute, tmp_path)))
    try:
        with pytest.raises(TransportError) as first:
            t.run("true")
        assert first.value.status is Status.UNKNOWN
        text = str(first.value)
        assert text.startswith("unreachable: ")
        assert f"mute (127.0.0.1:{mute.port})" in text
        assert "no SSH banner within 1s" in text
        assert "\n" not in text and "Secret-Pw-19" not in text
        # Later commands on the same transport fail at once with the same reason.
        for _ in range(2):
            with pytest.raises(TransportError) as again:
                t.run("true")
            assert str(again.value) == text
        assert mute.accepted == 1, mute.peers
    finally:
        t.close()


def test_close_forgets_the_failure(mute: SilentServer, tmp_path: Path) -> None:
    # An explicit close() then open() (a reboot waiting for the host) tries again.
    t = SSHTransport(Host("mute", vars=mute_vars(mute, tmp_path)))
    for _ in range(2):
        with pytest.raises(TransportError):
            t.open()
        t.close()
    assert mute.accepted == 2, mute.peers



# paramiko times the banner twice: start_client's own deadline in the caller's thread and
# banner_timeout in its reader thread. Under load either expires first; both orders must
# end as one silent-host failure and one connection. A delay injected into one side picks
# the order deterministically.

def test_silent_server_when_start_client_gives_up_first(
        mute: SilentServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_banner = paramiko.Transport._check_banner  # type: ignore[attr-defined]
    reader_started = threading.Event()

    def late_reader(self: paramiko.Transport) -> None:
        reader_started.set()
        time.sleep(1.5)  # past start_client's 1 s: it returns quietly, kex not done
        check_banner(self)

    monkeypatch.setattr(paramiko.Transport, "_check_banner", late_reader)
    t = SSHTransport(Host("mute", vars=mute_vars(mute, tmp_path)))
    try:
        with pytest.raises(TransportError, match="no SSH banner within 1s"):
            t.open()
    finally:
        t.close()
    assert reader_started.is_set()
    assert mute.accepted == 1, mute.peers


def test_silent_server_when_the_reader_gives_up_first(
        mute: SilentServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start_client = paramiko.Transport.start_client
    raised: list[BaseException] = []

    def patient_start(self: paramiko.Transport, event: Any = None,
                      timeout: float | None = None) -> None:
        try:
            start_client(self, event, None)  # only the reader's banner_timeout ends it
        except BaseException as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(paramiko.Transport, "start_client", patient_start)
    t = SSHTransport(Host("mute", vars=mute_vars(mute, tmp_path)))
    try:
        with pytest.raises(TransportError, match="no SSH banner within 1s"):
            t.open()
    finally:
        t.close()
    assert [type(e).__name__ for e in raised] == ["SSHException"]
    assert mute.accepted == 1, mute.peers


PLAYBOOK_CHECKS: list[dict[str, Any]] = [
    {"system.uptime": {"warn_days": 100000}},
    # Facts in when: are gathered lazily; a failure there must not reconnect.
    {"name": "a", "check": "system.command", "params": {"command": "true"},
     "when": "facts.os_family == 'linux'"},
    {"name": "b", "check": "system.command", "params": {"command": "true"},
     "when": "facts.os_family == 'linux'"},
]


@pytest.mark.parametrize("first_check", ["plain", "when-facts"])
def test_runner_connects_once_for_three_checks(mute: SilentServer, tmp_path: Path,
                                               first_check: str) -> None:
    from upkeeper.engine.playbook import load_playbook
    from upkeeper.engine.runner import run_playbook
    from upkeeper.inventory.loader import load_inventory
    from upkeeper.plugins import get_plugin_manager
    from upkeeper.store.history import History

    checks: list[dict[str, Any]] = list(PLAYBOOK_CHECKS)
    if first_check == "when-facts":
        checks[0] = {**checks[1], "name": "first"}
    playbook = {"name": "three checks", "hosts": "all", "checks": checks}
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"mute": mute_vars(mute, tmp_path)}}}))
    pb = tmp_path / "playbook.yml"
    pb.write_text(yaml.safe_dump(playbook, sort_keys=False))
    plugins = get_plugin_manager()
    run = run_playbook(load_playbook(pb, plugins.registry), load_inventory([inv]), plugins,
                       History(tmp_path / "h.db"), forks=2)
    assert [r.status for r in run.results] == [Status.UNKNOWN] * 3
    summaries = [r.summary for r in run.results]
    for summary in summaries:
        assert "unreachable: " in summary, summaries
        assert "no SSH banner within 1s" in summary, summaries
        assert "Secret-Pw-19" not in summary
    assert mute.accepted == 1, (summaries, mute.peers)


def test_server_text_in_errors_is_one_clean_line(tmp_path: Path) -> None:
    # A hostile or broken server controls part of paramiko's error text: terminal escapes
    # and newlines must not reach a report, nor a secret it echoes back.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = int(srv.getsockname()[1])

    def talk() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"junk \x1b[31mSecret-Pw-19\x07 \r\n" * 100)
            conn.recv(1024)

    threading.Thread(target=talk, daemon=True).start()
    t = SSHTransport(Host("odd", vars={"ansible_host": "127.0.0.1", "ansible_port": port,
                                       "ansible_password": "Secret-Pw-19",
                                       "ssh_connect_retries": 0}))
    try:
        with pytest.raises(TransportError) as info:
            t.run("true")
    finally:
        t.close()
        srv.close()
    text = str(info.value)
    assert text.startswith("unreachable: cannot connect to odd (127.0.0.1:")
    assert "Indecipherable protocol version" in text
    assert "Secret-Pw-19" not in text and "********" in text
    assert text.isprintable()


def test_silent_server_behind_a_jump_host_is_unreachable_once(
        mute: SilentServer, sshd: SSHServer, known_hosts: Path, tmp_path: Path) -> None:
    # The jump host forwards to a port that accepts and stays silent: the same one
    # bounded attempt as a direct connection, named as the target, not the jump host.
    jump = f"{login_user()}@127.0.0.1:{sshd.port}"
    t = SSHTransport(Host("mute", vars={
        **mute_vars(mute, tmp_path, ssh_known_hosts_file=str(known_hosts)),
        "ssh_jump_host": jump, "ansible_ssh_private_key_file": str(sshd.client_key)}))
    try:
        with pytest.raises(TransportError) as info:
            t.run("true")
        text = str(info.value)
        assert text.startswith("unreachable: "), text
        assert f"mute (127.0.0.1:{mute.port})" in text
        assert "no SSH banner within 1s" in text
        with pytest.raises(TransportError) as again:
            t.run("true")
        assert str(again.value) == text
        assert not t._hops
    finally:
        t.close()
    assert mute.accepted == 1, mute.peers


def test_silent_server_stops_listening_when_closed() -> None:
    # A closed SilentServer must not live on as a listener that still accepts (its
    # accept thread kept the socket open), or a later connection lands on a dead fixture.
    srv = SilentServer()
    socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()
    deadline = time.monotonic() + 5
    while srv.accepted < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    srv.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()
    assert srv.accepted == 1
    assert len(srv.peers) == 1 and srv.peers[0][0] == "127.0.0.1"
