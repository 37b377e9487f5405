"""Guarantee 1 (outbound only): a site's worker needs no open port and the hub never
dials a worker.

The namespace test runs the worker-side client in a network namespace of its own that
has nothing but loopback: no interface, address or route from the hub's side leads into
it. Its only way out is a relay that, like a NAT gateway, carries connections opened
from inside to the hub's port. The worker runs a whole job cycle through it. A second
test (no namespaces needed) reads /proc: every socket of the worker process is an
outbound connection, and every connection of nats-server was accepted on its listening
port, none dialled out.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sites.authhub import AuthHub, run, start_auth_hub
from tests.sites.natsserver import free_port
from upkeeper.sites import subjects as s

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SITE = "edge"
CLONE_NEWNET = 0x40000000
LISTEN, ESTABLISHED = "0A", "01"


@pytest.fixture
def auth_hub(tmp_path: Path) -> Iterator[AuthHub]:
    hub = start_auth_hub(tmp_path / "hub")
    hub.add_site(SITE)
    yield hub
    hub.server.stop()


def _queue_job(hub: AuthHub) -> None:
    async def go() -> None:
        nc = await hub.hub_client()
        await nc.jetstream().publish(s.jobs_subject(SITE), b'{"job": 1}',
                                     headers={"Nats-Msg-Id": "slot-1:host-1"})
        await nc.close()

    run(go())


def _result_count(hub: AuthHub) -> int:
    async def go() -> int:
        nc = await hub.hub_client()
        info = await nc.jetstream().stream_info(s.RESULTS_STREAM)
        await nc.close()
        return int(info.state.messages)

    return int(run(go()))


def sockets_of(pid: int) -> list[dict[str, str | int]]:
    """The TCP sockets process ``pid`` holds: state, local and remote port."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found: list[dict[str, str | int]] = []
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            f = line.split()
            if f[9] in inodes:
                found.append({"state": f[3], "local": int(f[1].rsplit(":", 1)[1], 16),
                              "remote": int(f[2].rsplit(":", 1)[1], 16)})
    return found


def _worker(hub: AuthHub, url: str, prefix: list[str]) -> subprocess.Popen[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "tests.sites.outbound_worker", url,
         str(hub.creds(SITE)), str(hub.ca), SITE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _finish(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline().strip()
    return line


def _close(proc: subprocess.Popen[str]) -> None:
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_worker_and_server_sockets_are_outbound_and_accepted(auth_hub: AuthHub) -> None:
    _queue_job(auth_hub)
    proc = _worker(auth_hub, auth_hub.url, [])
    try:
        assert _finish(proc) == "done"
        mine = sockets_of(proc.pid)
        assert mine, "the worker holds no TCP socket"
        assert all(x["state"] == ESTABLISHED and x["remote"] == auth_hub.server.port
                   for x in mine), mine  # it listens on nothing, dials only the hub
        assert auth_hub.server.proc is not None
        theirs = sockets_of(auth_hub.server.proc.pid)
        dialled = [x for x in theirs if x["state"] != LISTEN
                   and x["local"] != auth_hub.server.port]
        assert dialled == [], dialled  # nats-server only accepts, never connects out
    finally:
        _close(proc)
    assert _result_count(auth_hub) == 1


def _netns_usable() -> str | None:
    """Why the namespace test cannot run here, or None."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) are not installed"
    probe = subprocess.run(["unshare", "-n", "--", "ip", "link", "set", "lo", "up"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"this machine forbids network namespaces: {probe.stderr.strip()[:200]}"
    return None


def _listen_in_netns(pid: int, port: int) -> socket.socket:
    """A listening socket inside process ``pid``'s network namespace (made by a thread
    that enters it, so this process stays where it is)."""
    libc = ctypes.CDLL(None, use_errno=True)
    made: list[socket.socket | BaseException] = []

    def enter() -> None:
        try:
            with open(f"/proc/{pid}/ns/net") as ns:
                if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()
            made.append(sock)
        except BaseException as exc:
            made.append(exc)

    t = threading.Thread(target=enter)  # its namespace ends with it
    t.start()
    t.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


def _relay(listener: socket.socket, hub_port: int, stop: threading.Event) -> None:
    """Carry each connection opened inside the namespace to the hub (one way in: from
    the inside; nothing here accepts from the hub's side)."""
    listener.settimeout(0.2)

    def pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for x in (a, b):
                with contextlib.suppress(OSError):
                    x.shutdown(socket.SHUT_RDWR)

    while not stop.is_set():
        try:
            inside, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        outside = socket.create_connection(("127.0.0.1", hub_port))
        for a, b in ((inside, outside), (outside, inside)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


def test_worker_in_a_namespace_the_hub_cannot_reach_runs_a_job(auth_hub: AuthHub) -> None:
    why = _netns_usable()
    if why:
        pytest.skip(why)
    _queue_job(auth_hub)
    port = free_port()
    proc = _worker(auth_hub, f"tls://127.0.0.1:{port}",
                   ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"])
    stop = threading.Event()
    try:
        # The child is in its namespace once its netns differs from ours.
        from tests.waiting import wait_for
        wait_for(lambda: os.readlink(f"/proc/{proc.pid}/ns/net")
                 != os.readlink("/proc/self/ns/net"), "the worker's own namespace", 10)
        wait_for(lambda: "lo" in Path(f"/proc/{proc.pid}/net/dev").read_text()
                 and _lo_up(proc.pid), "loopback up in the namespace", 10)
        listener = _listen_in_netns(proc.pid, port)
        threading.Thread(target=_relay, args=(listener, auth_hub.server.port, stop),
                         daemon=True).start()
        assert _finish(proc) == "done"
        interfaces = [line.split(":")[0].strip() for line in
                      Path(f"/proc/{proc.pid}/net/dev").read_text().splitlines()[2:]]
        assert interfaces == ["lo"]  # no interface, so no route from the hub into it
        assert all(x["state"] == ESTABLISHED for x in sockets_of(proc.pid))
    finally:
        stop.set()
        _close(proc)
    assert _result_count(auth_hub) == 1


def _lo_up(pid: int) -> bool:
    try:
        out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "link", "show",
                              "lo"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "UP" in out.split("<", 1)[-1].split(">", 1)[0]


def test_real_worker_and_hub_over_tls_with_the_worker_unreachable(
        auth_hub: AuthHub, tmp_path: Path) -> None:
    """The production path end to end: config from ``hub nats-config``, credentials from
    ``sites add``, ``upkeeper run --hub`` with the hub's creds, and ``upkeeper worker``
    in a namespace the hub cannot reach, trusting the MSP's CA through its trust store."""
    why = _netns_usable()
    if why:
        pytest.skip(why)
    from tests.sites.test_jobs_cli import FAST_ENV, write_site
    from upkeeper.store.history import History

    pb, inv = write_site(tmp_path, {"e1": SITE, "e2": SITE, "local": ""},
                         "echo from {{ inventory_hostname }}")
    port = free_port()
    env = {**os.environ, **FAST_ENV, "PYTHONUNBUFFERED": "1",
           "SSL_CERT_FILE": str(auth_hub.ca)}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
         sys.executable, "-m", "upkeeper", "worker", "--site", SITE, "--hub",
         f"tls://127.0.0.1:{port}", "--creds", str(auth_hub.creds(SITE)),
         "--state-dir", str(tmp_path / "w")], stdout=log, stderr=subprocess.STDOUT, env=env)
    stop = threading.Event()
    try:
        from tests.waiting import wait_for
        wait_for(lambda: os.readlink(f"/proc/{worker.pid}/ns/net")
                 != os.readlink("/proc/self/ns/net") and _lo_up(worker.pid),
                 "the worker's own namespace with loopback up", 10)
        listener = _listen_in_netns(worker.pid, port)
        threading.Thread(target=_relay, args=(listener, auth_hub.server.port, stop),
                         daemon=True).start()
        done = subprocess.run(
            [sys.executable, "-m", "upkeeper", "run", str(pb), "-i", str(inv), "--hub",
             auth_hub.url, "--hub-creds", str(auth_hub.hub_creds), "--state-dir",
             str(tmp_path / "hub"), "--format", "json"],
            capture_output=True, text=True, timeout=90,
            env={**os.environ, **FAST_ENV, "SSL_CERT_FILE": str(auth_hub.ca)})
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + \
            (tmp_path / "worker.log").read_text()[-2000:]
        assert all(x["state"] == ESTABLISHED for x in sockets_of(worker.pid))
    finally:
        stop.set()
        worker.terminate()
        worker.wait(15)
        log.close()
    rows = History(tmp_path / "hub" / "history.sqlite3").query(
        "SELECT host, status, summary FROM results")
    assert sorted((r["host"], r["status"]) for r in rows) == [
        ("e1", "OK"), ("e2", "OK"), ("local", "OK")]
    assert "permission" not in (tmp_path / "worker.log").read_text().lower()
