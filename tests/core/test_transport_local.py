"""The local transport: real processes, timeouts that kill the whole group, capped output."""

from __future__ import annotations

import os
import time

from tests.waiting import processes_mentioning, wait_for
from upkeeper.models import Host
from upkeeper.transport.local import LocalTransport


def transport() -> LocalTransport:
    return LocalTransport(Host("localhost", vars={"ansible_connection": "local"}))


def test_run_string_and_list():
    t = transport()
    r = t.run("echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = t.run(["printf", "%s", "a b; $(touch /tmp/upk-should-not-exist) `id` 'q\"\n"])
    assert r.stdout == "a b; $(touch /tmp/upk-should-not-exist) `id` 'q\"\n"
    assert not os.path.exists("/tmp/upk-should-not-exist")


def test_stdin_and_env_not_on_command_line():
    t = transport()
    r = t.run("cat; printf %s \"$UPK_SECRET\"", stdin="in\n", env={"UPK_SECRET": "pw"})
    assert r.stdout == "in\npw"
    assert "pw" not in r.command


def test_timeout_kills_the_process_group(tmp_path):
    marker = tmp_path / "child-survived"
    t = transport()
    t0 = time.monotonic()
    r = t.run(f"(sleep 300; touch {marker}) & sleep 600", timeout=0.5)
    assert r.timed_out and not r.ok
    assert time.monotonic() - t0 < 300  # returned at the timeout, not after the command
    wait_for(lambda: not processes_mentioning(str(marker)),
             "the timed-out command and its background child to be killed")


def test_output_is_capped():
    t = transport()
    t.output_limit = 1000
    r = t.run("head -c 100000 /dev/zero | tr '\\0' x")
    assert len(r.stdout) == 1000 and r.truncated and r.exit_code == 0


def test_facts_of_this_machine():
    facts = transport().gather_facts()
    assert facts["os_family"] == "linux"
    assert facts["kernel"] == os.uname().release
    assert facts["hostname"]
    assert facts["pkg_mgr"] in ("apt", "dnf", "yum", "zypper", "apk", "pacman", None)


def test_sudo_env_wrapper_passes_values_on_stdin_only():
    import shlex
    import subprocess

    from upkeeper.transport.local import _SUDO_ENV_WRAPPER

    env = {"UPK_A": "p@ss w'rd $(id)", "UPK_B": "two\nlines"}
    block = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    cmd = 'printf "%s|%s|" "$UPK_A" "$UPK_B"; cat'
    out = subprocess.run(["/bin/sh", "-c", _SUDO_ENV_WRAPPER, "upkeeper", "@@end", cmd],
                         input=(block + "@@end\nrest of stdin\n").encode(),
                         capture_output=True, timeout=10)
    assert out.stdout.decode() == "p@ss w'rd $(id)|two\nlines|rest of stdin\n"
