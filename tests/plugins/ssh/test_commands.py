"""Commands over a real sshd: output, exit codes, stdin, env, quoting and output caps."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from upkeeper.plugins import get_plugin_manager
from upkeeper.testing import make_host
from upkeeper_ssh import SSHTransport
from upkeeper_ssh.testserver import SSHServer

pytestmark = pytest.mark.sshd

INJECTIONS = [
    "; rm -rf {sentinel}",
    "$(rm -f {sentinel})",
    "`rm -f {sentinel}`",
    "' ; rm -f {sentinel}; echo '",
    '" ; rm -f {sentinel}; echo "',
    "line1\nrm -f {sentinel}\n",
    "&& rm -f {sentinel} || true",
    "| rm -f {sentinel}",
    "\\'$(rm -f {sentinel})",
    "--help",
    "",
]


def test_registered_as_ssh_transport() -> None:
    registered = get_plugin_manager().registry.transport("ssh")
    assert registered.load() is SSHTransport  # type: ignore[attr-defined]
    assert isinstance(registered(make_host("h")), SSHTransport)


def test_exit_code_and_separate_streams(transport: SSHTransport) -> None:
    res = transport.run("echo out; echo err >&2; exit 3")
    assert (res.exit_code, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert not res.timed_out and not res.truncated


def test_one_connection_reused_for_every_command(transport: SSHTransport) -> None:
    transport.run("true")
    first = transport._hops[-1]
    ports = {transport.run("echo $SSH_CONNECTION").stdout.split()[1] for _ in range(5)}
    assert transport._hops[-1] is first
    assert len(ports) == 1


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_in_arguments_is_harmless(transport: SSHTransport, tmp_path: Path,
                                            payload: str) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("alive")
    value = payload.format(sentinel=sentinel)
    res = transport.run(["printf", "%s", value])
    assert res.exit_code == 0
    assert res.stdout == value
    res = transport.run('printf %s "$VALUE"', env={"VALUE": value})
    assert res.stdout == value
    res = transport.run("cat", stdin=value)
    assert res.stdout == value
    assert sentinel.read_text() == "alive"


def test_env_values_never_on_a_command_line(transport: SSHTransport) -> None:
    secret = "s3cr3t-value-" + "x" * 8
    # Every process's argv on the box while the command runs, including sshd's and ours.
    script = ('for f in /proc/[0-9]*/cmdline; do tr "\\000" " " < "$f" 2>/dev/null; echo; '
              'done; printf "len=%s\\n" "${#SECRET}"')
    res = transport.run(script, env={"SECRET": secret, "OTHER": "a'b\"c\nd"})
    assert res.exit_code == 0
    assert f"len={len(secret)}" in res.stdout
    assert secret not in res.stdout


def test_env_name_is_validated(transport: SSHTransport) -> None:
    from upkeeper import TransportError

    with pytest.raises(TransportError, match="invalid environment variable name"):
        transport.run("true", env={"A;touch /tmp/x": "1"})


def test_stdin_large_and_binary(transport: SSHTransport) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    res = transport.run("wc -c; ", stdin=data)
    assert res.stdout.strip() == str(len(data))


def test_stdin_reaches_command_after_env(transport: SSHTransport) -> None:
    res = transport.run('printf "%s|" "$A"; cat', stdin="first\nsecond\n",
                        env={"A": "multi\nline"})
    assert res.stdout == "multi\nline|first\nsecond\n"


def test_no_stdin_means_eof(transport: SSHTransport) -> None:
    res = transport.run("cat", timeout=10)
    assert res.ok and res.stdout == ""


def test_output_is_capped(transport: SSHTransport) -> None:
    transport.output_limit = 1000
    res = transport.run("head -c 200000 /dev/zero | tr '\\000' a; echo done >&2")
    assert res.exit_code == 0
    assert res.stdout == "a" * 1000
    assert res.truncated
    assert res.stderr == "done\n"


def test_gather_facts(transport: SSHTransport) -> None:
    facts = transport.gather_facts()
    assert facts["os_family"] == "linux"
    assert facts["hostname"]


def test_list_command_is_quoted_with_shlex(transport: SSHTransport) -> None:
    res = transport.run(["sh", "-c", 'echo "$1"', "sh", "a b  c"])
    assert res.stdout == "a b  c\n"


def test_noisy_rc_file_does_not_break_timeouts(transport: SSHTransport, sshd: SSHServer) -> None:
    if not pwd.getpwuid(os.geteuid()).pw_shell.endswith("bash"):
        pytest.skip("the login shell does not read ~/.bashrc")
    rc = sshd.home / ".bashrc"
    rc.write_text("echo rc-noise >&2\n")
    try:
        marker = f"upk-rc-{os.getpid()}"
        res = transport.run(f"echo err >&2; sleep 30; echo {marker}", timeout=1)
        assert res.timed_out
        left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
        assert left == ""  # the PID was found behind the noise and the command killed
        assert res.stderr == "rc-noise\nerr\n"
        assert transport.run("echo ok").stderr == "rc-noise\n"
    finally:
        rc.unlink()
    assert not transport._running


def test_a_program_and_its_words_is_execed_by_the_login_shell_and_killed_on_timeout(
        transport: SSHTransport) -> None:
    """A plain argv (no /bin/sh layer: one process start fewer per command) still reports
    its PID, gets its env and stdin, and is killed on the host when it times out."""
    res = transport.run(["sh", "-c", 'printf "%s|%s|" "$A" "$1"; cat', "zero", "it's one"],
                        env={"A": "x y"}, stdin="in")
    assert (res.exit_code, res.stdout, res.stderr) == (0, "x y|it's one|in", "")
    marker = f"upk-words-{os.getpid()}"
    res = transport.run(["sh", "-c", "sleep 30; true", marker], timeout=1)
    assert res.timed_out
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == ""
    missing = transport.run(["no-such-program-upk"])
    assert missing.exit_code == 127
