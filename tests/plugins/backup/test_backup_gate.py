"""The in-process repository gate and the once-per-run integrity outcome (real threads)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from upkeeper import CommandResult
from upkeeper.testing import make_host
from upkeeper_backup.gate import (
    GateTimeout,
    RepoCoordinator,
    RepoGate,
    outcome_key,
    repo_identity,
)

LOCAL = make_host("web01", vars={"ansible_connection": "local"})
OTHER_LOCAL = make_host("web02", vars={"ansible_connection": "local"})
SSH_A = make_host("a", vars={"ansible_host": "10.0.0.1"})
SSH_B = make_host("b", vars={"ansible_host": "10.0.0.2"})


def wait_for(condition: Any, what: str, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("a,host_a,b,host_b", [
    ("/srv/restic", LOCAL, "/srv/restic/", OTHER_LOCAL),
    ("/srv/restic", LOCAL, "local:/srv//restic", LOCAL),
    ("rest:https://u:pw1@Backup.Example:8000/web/", SSH_A,
     "rest:https://u:pw2@backup.example:8000/web", SSH_B),
    ("s3:s3.amazonaws.com/bucket/x/", SSH_A, "s3:s3.amazonaws.com/bucket/x", SSH_B),
    ("ssh://borg@NAS/./repo", SSH_A, "ssh://borg@nas/./repo/", SSH_B),
    ("borg@nas:repo", SSH_A, "borg@NAS:repo/", SSH_B),
])
def test_same_repository_spelled_differently(a, host_a, b, host_b):
    assert repo_identity(a, host_a) == repo_identity(b, host_b)


@pytest.mark.parametrize("a,host_a,b,host_b", [
    ("/srv/restic", SSH_A, "/srv/restic", SSH_B),  # a local path on two machines
    ("/srv/restic", LOCAL, "/srv/restic", SSH_A),
    ("sftp:alice@nas:/r", SSH_A, "sftp:bob@nas:/r", SSH_A),  # per-user storage
    ("rest:https://Alice@nas/r", SSH_A, "rest:https://alice@nas/r", SSH_A),
    ("/srv/restic", LOCAL, "/srv/restic2", LOCAL),
])
def test_different_repositories_stay_apart(a, host_a, b, host_b):
    assert repo_identity(a, host_a) != repo_identity(b, host_b)


def test_identity_and_key_never_hold_credentials():
    ident = repo_identity("rest:https://u:Top-Secret-77@nas:8000/web", SSH_A)
    assert "Top-Secret" not in ident
    key = outcome_key(ident, ["restic", "check"], {"RESTIC_PASSWORD": "Top-Secret-77"}, False)
    assert "Top-Secret" not in key
    assert key != outcome_key(ident, ["restic", "check"], {"RESTIC_PASSWORD": "other"}, False)
    assert key != outcome_key(ident, ["restic", "check"], {"RESTIC_PASSWORD": "Top-Secret-77"},
                              True)


def test_exclusive_holder_runs_alone_and_waiting_writer_goes_first():
    gate = RepoGate()
    release = threading.Event()
    order: list[str] = []

    def hold(access: Any, name: str, until: threading.Event | None = None) -> None:
        with gate.hold(access, 10, name):
            order.append(name)
            if until is not None:
                until.wait(10)

    reader = threading.Thread(target=hold, args=("shared", "reader", release))
    reader.start()
    wait_for(lambda: order == ["reader"], "the reader")
    with gate.hold("shared", 1, "second reader"):  # readers share
        pass
    writer = threading.Thread(target=hold, args=("exclusive", "writer"))
    writer.start()
    wait_for(lambda: gate._writers_waiting == 1, "the writer to queue")
    with pytest.raises(GateTimeout) as err:  # a queued writer holds off new readers
        with gate.hold("shared", 0.05, "late reader"):
            pass
    assert err.value.holder == "reader"
    late = threading.Thread(target=hold, args=("shared", "late reader"))
    late.start()
    release.set()
    for t in (reader, writer, late):
        t.join(10)
    assert order == ["reader", "writer", "late reader"]


def test_one_outcome_per_run_shared_with_waiting_hosts():
    coord = RepoCoordinator()
    started, finish = threading.Event(), threading.Event()
    calls: list[str] = []
    got: dict[str, Any] = {}

    def slow_check() -> CommandResult:
        calls.append("check")
        started.set()
        finish.wait(10)
        return CommandResult("restic check", 0, "no errors were found", "")

    def host(name: str) -> None:
        got[name] = coord.once_per_run("run-1", "k", name, 10, slow_check)

    first = threading.Thread(target=host, args=("web01",))
    first.start()
    started.wait(10)
    others = [threading.Thread(target=host, args=(n,)) for n in ("web02", "web03")]
    for t in others:
        t.start()
    finish.set()
    for t in [first, *others]:
        t.join(10)
    assert calls == ["check"]
    assert got["web01"].ran_for == "" and got["web02"].ran_for == "web01"
    assert got["web03"].result is got["web01"].result
    # Another run checks again.
    again = coord.once_per_run("run-2", "k", "web02", 10, slow_check)
    assert calls == ["check", "check"] and again.ran_for == ""


def test_failed_owner_leaves_the_check_to_the_next_host():
    coord = RepoCoordinator()

    def broken() -> CommandResult:
        raise RuntimeError("connection lost")

    with pytest.raises(RuntimeError):
        coord.once_per_run("run-1", "k", "web01", 5, broken)
    ok = coord.once_per_run("run-1", "k", "web02", 5,
                            lambda: CommandResult("restic check", 0, "", ""))
    assert ok.ran_for == "" and ok.result.ok


def test_old_runs_are_forgotten():
    coord = RepoCoordinator()
    for i in range(40):
        coord.once_per_run(f"run-{i}", "k", "h", 5, lambda: CommandResult("c", 0, "", ""))
    assert len(coord._runs) <= 16
