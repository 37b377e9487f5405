"""Environment passing: names checked everywhere, values only on stdin under sudo, and
children that start from a minimal environment."""

from __future__ import annotations

import shutil

import pytest
from pydantic import ValidationError

from upkeeper import EnvName, Params
from upkeeper.models import Host
from upkeeper.transport import local as local_module
from upkeeper.transport.env import EnvError, check_env_name, child_environ, env_block
from upkeeper.transport.local import LocalTransport

BAD_NAMES = ["X;touch {m};Y", "$(touch {m})", "A\ntouch {m}\nB", "`touch {m}`", "", "1X",
             "A B", "A=B", "LD_PRELOAD", "BASH_ENV", "ENV"]


def transport() -> LocalTransport:
    return LocalTransport(Host("localhost", vars={"ansible_connection": "local"}))


@pytest.fixture
def as_non_root(monkeypatch):
    """The local transport's sudo path (taken when upkeeper does not run as root)."""
    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed")
    monkeypatch.setattr(local_module.os, "geteuid", lambda: 1000)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_never_reach_a_shell(tmp_path, name, as_non_root):
    marker = tmp_path / "pwned"
    bad = name.format(m=marker)
    with pytest.raises(EnvError, match="environment variable"):
        check_env_name(bad)
    for sudo in (True, False):
        with pytest.raises(EnvError):
            transport().run("true", sudo=sudo, env={bad: "v", "GOOD": "x"})
    assert not marker.exists()


def test_values_pass_through_sudo_on_stdin_unchanged(as_non_root):
    values = {"UPK_A": "p@ss w'rd $(id) `id` \\ \"q\"", "UPK_B": "two\nlines", "UPK_C": ""}
    r = transport().run('printf "%s|%s|%s|" "$UPK_A" "$UPK_B" "$UPK_C"; cat', sudo=True,
                        stdin="rest of stdin\n", env=values)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"{values['UPK_A']}|two\nlines||rest of stdin\n"
    assert "p@ss" not in r.command


def test_params_validate_env_names():
    class WithEnv(Params):
        env: dict[EnvName, str] = {}

    assert WithEnv.model_validate({"env": {"AWS_SECRET_ACCESS_KEY": "k"}}).env
    for bad in ("X;id>/tmp/f;Y", "$(id)", "A\nB"):
        with pytest.raises(ValidationError, match="invalid environment variable name"):
            WithEnv.model_validate({"env": {bad: "v"}})


def test_env_block_refuses_a_value_line_equal_to_the_marker():
    with pytest.raises(EnvError, match="end marker"):
        env_block({"A": "x\n@@end\ny"}, "@@end")


def test_children_start_from_a_minimal_environment(monkeypatch):
    monkeypatch.setenv("UPK_T_SMTP_PASSWORD", "canary-env-12")
    monkeypatch.setenv("RESTIC_CACHE_DIR", "/tmp/restic-cache-test")
    monkeypatch.setenv("UPKEEPER_PASS_ENV", "RESTIC_CACHE_DIR, LD_PRELOAD")
    monkeypatch.setenv("LD_PRELOAD", "/nonexistent.so")
    r = transport().run("env", env={"UPK_ASKED": "yes"})
    names = {line.split("=", 1)[0] for line in r.stdout.splitlines() if "=" in line}
    assert "canary-env-12" not in r.stdout
    assert {"PATH", "UPK_ASKED", "RESTIC_CACHE_DIR", "TERM"} <= names
    assert "TERM=dumb" in r.stdout.splitlines()
    # sh adds PWD, SHLVL and _ itself; nothing else comes from upkeeper's environment
    allowed = {*child_environ(), "UPK_ASKED", "PWD", "SHLVL", "_", "OLDPWD"}
    assert names <= allowed, names - allowed
    assert "LD_PRELOAD" not in names


def test_every_transport_builds_env_with_the_shared_checks():
    from upkeeper_backup.restic import ResticParams
    from upkeeper_ssh.remote import build
    from upkeeper_winrm.scripts import cmd_with_env_script

    bad = "X;id>/tmp/f;Y"
    with pytest.raises(ValueError, match="invalid environment variable name"):
        build("true", timeout=5, env={bad: "v"}, sudo_user="root", sudo_password=False,
              prompt_token="t")
    with pytest.raises(ValueError, match="invalid environment variable name"):
        cmd_with_env_script("dir", {bad: "v"})
    with pytest.raises(ValidationError, match="invalid environment variable name"):
        ResticParams.model_validate({"repository": "/r", "password": "p", "env": {bad: "v"}})
