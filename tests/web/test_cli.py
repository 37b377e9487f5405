"""``upkeeper web`` on the command line: users (password never from argv), the bind rule,
and the dashboard started by ``serve --web`` in a real process."""

from __future__ import annotations

import signal
import socket
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.core.servehelp import FAST, Serve
from tests.waiting import wait_for
from upkeeper.cli.main import main
from upkeeper.store.history import History
from upkeeper.web.auth import Users


def cli(state: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--state-dir", str(state), *args], input=stdin)
    return result.exit_code, result.output


@pytest.mark.slow  # real Argon2 parameters through the CLI: about a second
def test_user_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    code, out = cli(tmp_path, "web", "user", "add", "alice", "--role", "operator",
                    "--client", "acme", stdin="s3cret-pass\n")
    assert code == 0, out
    assert "s3cret-pass" not in out
    history = History(tmp_path / "history.sqlite3")
    user = Users(history).verify_password("alice", "s3cret-pass")
    assert user is not None and (user.role, user.clients) == ("operator", ("acme",))
    stored = history.query("SELECT password_hash FROM web_users")[0][0]
    assert stored.startswith("$argon2") and "s3cret-pass" not in stored
    code, out = cli(tmp_path, "web", "user", "list")
    assert "alice\toperator\tacme\tpassword" in out
    # There is no option that takes the password itself.
    code, out = cli(tmp_path, "web", "user", "add", "bob", "--role", "viewer",
                    "--password", "x")
    assert code != 0 and "No such option" in out


def test_user_add_token_prints_it_once(tmp_path: Path) -> None:
    code, out = cli(tmp_path, "web", "user", "add", "nagios", "--role", "viewer", "--token")
    assert code == 0
    token = out.strip().splitlines()[-1]
    history = History(tmp_path / "history.sqlite3")
    assert Users(history).verify_token(token) is not None
    assert token not in str(history.query("SELECT * FROM web_users")[0][:])


@pytest.mark.parametrize("args", [["--role", "admin"], ["--role", "viewer"]])
def test_user_add_rejects(tmp_path: Path, args: list[str]) -> None:
    code, _ = cli(tmp_path, "web", "user", "add", "bad name", *args, stdin="pw\n")
    assert code != 0


def test_web_refuses_a_public_bind_without_users(tmp_path: Path) -> None:
    code, out = cli(tmp_path, "web", "--bind", "0.0.0.0:0")
    assert code == 3
    assert "without authentication" in out and "web user add" in out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_starts_the_dashboard(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "tick.yml").write_text(FAST.format(name="tick", every="1h",
                                                    command="true"))
    port = free_port()
    serve = Serve(playbooks, tmp_path / "state", "--web", f"127.0.0.1:{port}")

    def fleet() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            assert serve.proc.poll() is None, serve.text()
            return ""

    assert "Fleet" in wait_for(fleet, "the dashboard of serve --web")
    serve.signal(signal.SIGTERM)
    assert serve.wait() == 0, serve.text()


def test_serve_refuses_a_public_dashboard_without_users(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    code, out = cli(tmp_path / "state", "serve", "--playbooks", str(playbooks),
                    "--web", "0.0.0.0:0", "--max-runtime", "1s")
    assert code == 3, out
    assert "--web" in out and "without authentication" in out


def test_user_list_has_a_header_and_json(tmp_path: Path) -> None:
    import json

    cli(tmp_path, "web", "user", "add", "nagios", "--role", "viewer", "--client", "acme",
        "--token")
    code, out = cli(tmp_path, "web", "user", "list")
    assert code == 0
    assert out.splitlines() == ["User\tRole\tClients\tLogin", "nagios\tviewer\tacme\ttoken"]
    code, out = cli(tmp_path, "web", "user", "list", "--format", "json")
    assert code == 0
    assert json.loads(out) == [{"name": "nagios", "role": "viewer", "clients": ["acme"],
                                "login": "token"}]
