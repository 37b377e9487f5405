"""Timeouts, a server dying mid-command, connect retries, jump hosts and quiet logging."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.ssh.conftest import start_server
from upkeeper import Host, TransportError
from upkeeper_ssh import SSHTransport
from upkeeper_ssh.exchange import Exchange
from upkeeper_ssh.testserver import SSHServer, free_port

pytestmark = pytest.mark.sshd

Vars = Callable[..., dict[str, Any]]


def remote_procs(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def test_timeout_closes_channel_and_kills_remote_command(transport: SSHTransport) -> None:
    marker = f"upk-timeout-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    res = transport.run(f"sh -c 'sleep 60; echo {marker}' & sleep 61; echo {marker}",
                        timeout=1)
    assert res.timed_out and res.exit_code == -1
    assert 0.9 < time.monotonic() - started < 3
    assert marker not in res.stdout
    # The whole process group (grandchildren included) is killed before run() returns.
    deadline = time.monotonic() + 1
    while remote_procs(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert remote_procs(marker) == []
    assert transport.run("echo still usable").stdout == "still usable\n"


@pytest.fixture
def private_sshd(tmp_path: Path) -> Iterator[SSHServer]:
    srv = start_server(tmp_path / "private")
    yield srv
    srv.kill_all()
    srv.stop()


@pytest.mark.slow
def test_server_killed_mid_command(private_sshd: SSHServer, tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    kh.write_text(private_sshd.known_hosts_lines())
    vars = {"ansible_host": "127.0.0.1", "ansible_port": private_sshd.port,
            "ansible_user": "root", "ansible_ssh_private_key_file": str(private_sshd.client_key),
            "ssh_known_hosts_file": str(kh), "ssh_connect_retries": 0}
    t = SSHTransport(Host("doomed", vars=vars))
    assert t.run("echo up").stdout == "up\n"
    outcome: dict[str, Any] = {}

    def long_command() -> None:
        try:
            outcome["result"] = t.run("sleep 30", timeout=60)
        except TransportError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=long_command)
    started = time.monotonic()
    worker.start()
    time.sleep(0.5)
    private_sshd.kill_all()
    worker.join(15)
    assert not worker.is_alive(), "run() hung after the server died"
    assert time.monotonic() - started < 10
    assert "lost" in str(outcome.get("error")), outcome
    with pytest.raises(TransportError, match="cannot connect"):
        t.run("echo again")
    t.close()


def test_connection_refused_is_retried_then_reported(host_vars: Vars) -> None:
    port = free_port()
    t = SSHTransport(Host("nowhere", vars=host_vars(ansible_port=port, ssh_connect_retries=2)))
    started = time.monotonic()
    with pytest.raises(TransportError, match="after 3 attempts") as info:
        t.run("true")
    assert "refused" in str(info.value).lower()
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_retry_succeeds_when_server_comes_up(tmp_path: Path) -> None:
    port = free_port()
    srv = SSHServer(tmp_path / "late", port=port)
    srv.authorize("root")
    kh = tmp_path / "kh"
    kh.write_text(srv.known_hosts_lines())
    vars = {"ansible_host": "127.0.0.1", "ansible_port": port, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(srv.client_key), "ssh_known_hosts_file": str(kh),
            "ssh_connect_retries": 8}
    starter = threading.Timer(0.6, srv.start)
    starter.start()
    t = SSHTransport(Host("late", vars=vars))
    try:
        assert t.run("echo finally").stdout == "finally\n"
    finally:
        t.close()
        starter.join()
        srv.stop()


FAKE_SERVER_CLIENT = """
import socket, sys, threading, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4)
port = srv.getsockname()[1]
def serve():
    conn, _ = srv.accept()
    conn.sendall(b"SSH-2.0-fake\\r\\n" + b"\\x00\\x00\\x00\\x0c\\x0a\\x15garbage!!!!" * 3)
    time.sleep(0.2)
    conn.close()
threading.Thread(target=serve, daemon=True).start()
if sys.argv[1] == "paramiko":
    import paramiko
    try:
        paramiko.Transport(socket.create_connection(("127.0.0.1", port))).start_client(timeout=3)
    except paramiko.SSHException as exc:
        print("failed:", exc)
else:
    from upkeeper import Host, TransportError
    from upkeeper_ssh import SSHTransport
    vars = {"ansible_host": "127.0.0.1", "ansible_port": port, "ssh_connect_retries": 0,
            "ansible_password": "unused"}
    try:
        SSHTransport(Host("fake", vars=vars)).run("true")
    except TransportError as exc:
        print("failed:", exc)
"""


def test_paramiko_tracebacks_stay_off_stderr(tmp_path: Path) -> None:
    # A server that speaks broken SSH: paramiko logs a traceback from its own thread.
    script = tmp_path / "client.py"
    script.write_text(FAKE_SERVER_CLIENT)
    bare = subprocess.run([sys.executable, str(script), "paramiko"], capture_output=True,
                          text=True, timeout=30)
    assert "Traceback" in bare.stderr  # what an unrouted paramiko does
    ours = subprocess.run([sys.executable, str(script), "upkeeper"], capture_output=True,
                          text=True, timeout=30)
    assert ours.stdout.startswith("failed: unreachable: cannot connect to fake")
    assert "SSH handshake failed" in ours.stdout
    assert ours.stderr == ""


@pytest.fixture
def jump_sshd(tmp_path: Path, sshd: SSHServer) -> Iterator[SSHServer]:
    srv = start_server(tmp_path / "jump", log_level="DEBUG1")
    srv.authorize("root", sshd.client_key.with_suffix(".pub"))
    yield srv
    srv.stop()


def test_jump_host_chain(host_vars: Vars, sshd: SSHServer, jump_sshd: SSHServer,
                         known_hosts: Path) -> None:
    with open(known_hosts, "a") as fh:
        fh.write(jump_sshd.known_hosts_lines())
    hop = f"root@127.0.0.1:{jump_sshd.port}"
    for jump in (hop, f"{hop},{hop}"):
        t = SSHTransport(Host("behind", vars=host_vars(ssh_jump_host=jump)))
        try:
            assert t.run("echo via jump").stdout == "via jump\n"
            assert len(t._hops) == jump.count(",") + 2
        finally:
            t.close()
    assert f"target 127.0.0.1 port {sshd.port}" in jump_sshd.log_text()


def test_unknown_jump_host_key_is_refused(host_vars: Vars, jump_sshd: SSHServer) -> None:
    t = SSHTransport(Host("behind", vars=host_vars(
        ssh_jump_host=f"root@127.0.0.1:{jump_sshd.port}")))
    with pytest.raises(TransportError, match=r"host key for jump host 127\.0\.0\.1 is not known"):
        t.run("true")


def test_close_from_another_thread_unblocks_run(transport: SSHTransport) -> None:
    # The runner closes a hung check's transport from another thread.
    marker = f"upk-close-{uuid.uuid4().hex[:8]}"
    transport.run("true")

    def close_once_running() -> None:
        # Close only once the command has reported its PID (a loaded machine may take
        # longer than any fixed delay to start the remote shell).
        deadline = time.monotonic() + 20
        while not transport._running and time.monotonic() < deadline:
            time.sleep(0.05)
        transport.close()

    closer = threading.Thread(target=close_once_running)
    closer.start()
    with pytest.raises(TransportError, match=r"closed by upkeeper|lost"):
        transport.run(f"sleep 30; echo {marker}", timeout=60)
    closer.join()
    assert remote_procs(marker) == []  # killed before the connection was closed


def test_close_before_the_pid_line_is_read_still_kills_the_remote_command(
        transport: SSHTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    # close() landing after the command started on the host but before its `@@upk PID`
    # line was read: close cannot kill by PID yet, and once the connection is gone sshd
    # leaves the command running (a long `restic check` would go on after upkeeper gave
    # up). Hold run() right where it is about to read the PID line, close meanwhile.
    marker = f"upk-early-close-{uuid.uuid4().hex[:8]}"
    transport.run("true")
    reached, go = threading.Event(), threading.Event()
    real_pid_line = Exchange._pid_line

    def held_pid_line(self: Exchange, chunk: bytes) -> bytes:
        if not reached.is_set():
            reached.set()
            assert go.wait(30)
        return real_pid_line(self, chunk)

    monkeypatch.setattr(Exchange, "_pid_line", held_pid_line)
    errors: list[BaseException] = []

    def run_long() -> None:
        try:
            transport.run(f"while :; do sleep 0.1; done; echo {marker}", timeout=120)
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=run_long)
    runner.start()
    try:
        assert reached.wait(30), "the PID line never arrived"
        closer = threading.Thread(target=transport.close)
        closer.start()
        deadline = time.monotonic() + 10
        while not transport.closing and time.monotonic() < deadline:
            time.sleep(0.01)
        assert transport.closing
        # Let close() do what it does without the PID (finish, or wait for the line),
        # then let run() read the line.
        closer.join(0.5)
        go.set()
        closer.join(30)
        runner.join(30)
        assert not closer.is_alive() and not runner.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], TransportError), errors
        deadline = time.monotonic() + 10
        while remote_procs(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert remote_procs(marker) == [], "the command outlived the closed transport"
        assert "was closed" in str(errors[0])
    finally:
        go.set()
        for line in remote_procs(marker):
            subprocess.run(["kill", "-KILL", "--", line.split()[0]], check=False)


def test_close_between_connect_and_exec_raises_was_closed(
        transport: SSHTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    # close() after run() connected but before the command was sent: nothing may start
    # on the host, and run() says the transport was closed (it used to hit the emptied
    # connection list with an IndexError).
    marker = f"upk-exec-close-{uuid.uuid4().hex[:8]}"
    transport.run("true")
    reached, go = threading.Event(), threading.Event()
    real_open_channel = SSHTransport._open_channel

    def held_open_channel(self: SSHTransport, *args: Any) -> Any:
        reached.set()
        assert go.wait(30)
        return real_open_channel(self, *args)

    monkeypatch.setattr(SSHTransport, "_open_channel", held_open_channel)
    errors: list[BaseException] = []

    def run_long() -> None:
        try:
            transport.run(f"sleep 30; echo {marker}", timeout=60)
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=run_long)
    runner.start()
    try:
        assert reached.wait(30)
        closer = threading.Thread(target=transport.close)
        closer.start()
        closer.join(0.5)  # close() finishes, or waits for the command it knows started
        go.set()
        closer.join(30)
        runner.join(30)
        assert not closer.is_alive() and not runner.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], TransportError), errors
        assert "was closed" in str(errors[0])
        assert remote_procs(marker) == []
    finally:
        go.set()
