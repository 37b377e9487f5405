"""Pure parts: inventory variables, jump host syntax, the env block and the wrapper line."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from upkeeper import Host
from upkeeper_ssh.config import (
    ConfigError,
    Endpoint,
    parse_endpoint,
    parse_jump_hosts,
    settings_from_host,
)
from upkeeper_ssh.remote import build, env_block, remote_timeout, runs_as_words


def test_settings_from_ansible_vars() -> None:
    s = settings_from_host(Host("web1", vars={
        "ansible_host": "10.0.0.5", "ansible_port": "2222", "ansible_user": "deploy",
        "ansible_ssh_pass": "pw", "ansible_become": "yes", "ansible_become_pass": "bpw",
        "ansible_ssh_timeout": 7, "ssh_keepalive": 0, "ssh_known_hosts_file": "~/kh",
        "ssh_jump_host": "bastion.example:2200,ops@inner",
    }))
    assert s.target == Endpoint("10.0.0.5", 2222, "deploy")
    assert s.password == "pw" and s.become and s.become_password == "bpw"
    assert s.connect_timeout == 7 and s.keepalive == 0
    assert s.known_hosts_files[0].endswith("/kh") and "~" not in s.known_hosts_files[0]
    assert s.jump_hosts == (Endpoint("bastion.example", 2200), Endpoint("inner", 22, "ops"))
    assert not s.use_agent and not s.look_for_keys
    assert "pw" not in repr(s)


def test_defaults_use_agent_and_default_keys() -> None:
    s = settings_from_host(Host("web1"))
    assert s.target.host == "web1" and s.target.port == 22
    assert s.use_agent and s.look_for_keys and s.host_key_checking


@pytest.mark.parametrize(("text", "expected"), [
    ("host", Endpoint("host", 22)),
    ("u@host:2022", Endpoint("host", 2022, "u")),
    ("[::1]:2200", Endpoint("::1", 2200)),
    ("root@[fe80::1]", Endpoint("fe80::1", 22, "root")),
    ("::1", Endpoint("::1", 22)),
])
def test_parse_endpoint(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("bad", ["host:notaport", "host:70000", "@host", "[::1", ":22"])
def test_parse_endpoint_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_endpoint(bad)


def test_jump_hosts_empty() -> None:
    assert parse_jump_hosts(None) == () and parse_jump_hosts("") == ()


def test_bad_boolean_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="ssh_host_key_checking"):
        settings_from_host(Host("h", vars={"ssh_host_key_checking": "maybe"}))


def test_remote_timeout_lets_client_decide_first() -> None:
    assert remote_timeout(None) == 0
    assert remote_timeout(0.5) == 2
    assert remote_timeout(30) == 31


def test_env_block_round_trips_through_sh() -> None:
    env = {"A": "it's \"quoted\" $(x) `y`", "B": "two\nlines\n", "C": ""}
    block = env_block(env, "@@END")
    script = ('s=; while IFS= read -r l; do [ "$l" = @@END ] && break; s="$s$l\n"; done; '
              'eval "$s"; printf "%s|%s|%s" "$A" "$B" "$C"; cat')
    out = subprocess.run(["sh", "-c", script], input=block + b"rest", capture_output=True,
                         check=True).stdout.decode()
    assert out == f"{env['A']}|{env['B']}|rest"


def test_env_block_rejects_bad_names() -> None:
    with pytest.raises(ValueError):
        env_block({"X=1; rm": "v"}, "@@E")
    with pytest.raises(ValueError):
        env_block({"X": "a\0b"}, "@@E")


def test_command_line_holds_no_env_values() -> None:
    remote = build("echo hi", timeout=5, env={"TOKEN": "secret-token"}, sudo_user=None,
                   sudo_password=False, prompt_token="t")
    assert "secret-token" not in remote.line
    assert b"secret-token" in remote.env_block
    assert remote.reports_pid
    assert remote.line.endswith("exec /bin/sh -c 'echo hi'")


def test_plain_command_line_runs_in_sh() -> None:
    remote = build("printf '%s|' \"$A\" \"$0\"; cat", timeout=5, env={"A": "x y"},
                   sudo_user=None, sudo_password=False, prompt_token="t")
    proc = subprocess.run(["sh", "-c", remote.line], input=remote.env_block + b"in",
                          capture_output=True, check=True)
    assert proc.stdout == b"x y|/bin/sh|in"
    first, _, rest = proc.stderr.partition(b"\n")
    assert first.startswith(b"@@upk ") and int(first[6:]) > 1 and rest == b""


@pytest.mark.parametrize(("command", "direct"), [
    ("cat /proc/uptime", True),
    (shlex.join(["df", "-P", "--", "/mnt/it's a disk", ""]), True),
    (shlex.join(["/usr/bin/env"]), True),
    ("df -P | tail -1", False),             # operators
    ("cat /etc/*release", False),           # a glob
    ("echo $HOME", False),                  # an expansion (and a builtin)
    ("cat </etc/hostname", False),          # a redirection
    ("FOO=1 env", False),                   # an assignment
    ("ls =ls", False),                      # zsh's =cmd expansion
    ('cat "/etc/os-release"', False),       # quoting other than shlex.join's
    ("cd /tmp", False), ("printf x", False), ("test -e /x", False),  # builtins
    ("-l", False), ("", False), ("cat 'unbalanced", False),
])
def test_only_plain_words_skip_the_sh_layer(command: str, direct: bool) -> None:
    assert runs_as_words(command) is direct
    if command and direct:
        remote = build(command, timeout=5, env=None, sudo_user=None, sudo_password=False,
                       prompt_token="t")
        assert remote.line.endswith(f"exec {command}") and remote.reports_pid


def test_plain_words_run_in_the_login_shell_with_env_and_stdin() -> None:
    command = shlex.join(["sh", "-c", 'printf "%s|%s|" "$A" "$1"; cat', "zero", "it's one"])
    remote = build(command, timeout=5, env={"A": "x y"}, sudo_user=None,
                   sudo_password=False, prompt_token="t")
    assert "/bin/sh -c" not in remote.line
    proc = subprocess.run(["sh", "-c", remote.line], input=remote.env_block + b"in",
                          capture_output=True, check=True)
    assert proc.stdout == b"x y|it's one|in"
    first, _, rest = proc.stderr.partition(b"\n")
    assert first.startswith(b"@@upk ") and rest == b""


def test_sudo_wrapper_has_remote_timeout() -> None:
    remote = build("echo hi", timeout=5, env=None, sudo_user="root", sudo_password=False,
                   prompt_token="t")
    argv = shlex.split(remote.line)
    assert argv[-1] == "echo hi" and argv[-2] == "6"


def test_sudo_line_uses_prompt_marker() -> None:
    remote = build("id", timeout=None, env=None, sudo_user="root", sudo_password=True,
                   prompt_token="abc")
    argv = shlex.split(remote.line)
    assert argv[1:7] == ["sudo", "-S", "-p", "[upkeeper-sudo-abc]", "-u", "root"]
    assert remote.ready_marker and remote.ready_marker in argv
    nopw = build("id", timeout=None, env=None, sudo_user="root", sudo_password=False,
                 prompt_token="abc")
    assert shlex.split(nopw.line)[1:3] == ["sudo", "-n"]
