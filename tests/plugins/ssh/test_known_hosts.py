"""known_hosts files with markers, patterns, hashed names and bad lines, on a real sshd."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from upkeeper import Host, Status, TransportError
from upkeeper_ssh import SSHTransport, auth, known_hosts
from upkeeper_ssh.testserver import SSHServer, keygen

pytestmark = pytest.mark.sshd

Vars = Callable[..., dict[str, Any]]


def run_once(vars: dict[str, Any]) -> str:
    t = SSHTransport(Host("h1", vars=vars))
    try:
        return t.run("echo ok").stdout
    finally:
        t.close()


def pub(path: Path) -> str:
    """``type base64`` of a public key file."""
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def server_pub(sshd: SSHServer, kind: str) -> str:
    return next(pub(k) for k in sshd.host_keys if kind in k.name)


def hashed(lines: str, tmp_path: Path) -> str:
    f = tmp_path / "to_hash"
    f.write_text(lines)
    subprocess.run(["ssh-keygen", "-H", "-f", str(f)], check=True, capture_output=True)
    return f.read_text()


def test_markers_comments_and_bad_lines_do_not_disable_ssh(
        host_vars: Vars, sshd: SSHServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    ca = pub(keygen(tmp_path / "ca", "ed25519"))
    stranger = pub(keygen(tmp_path / "stranger", "ed25519"))
    kh = tmp_path / "known_hosts"
    kh.write_text(
        "# fleet keys\n"                                           # 1
        "\n"                                                       # 2
        f"@cert-authority *.example.com {ca}\n"                    # 3
        f"@revoked * {stranger}\n"                                 # 4
        "old.example.com sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t\n"
        "broken.example.com ssh-ed25519\n"                         # 6
        "bad64.example.com ssh-ed25519 !!notbase64!!\n"            # 7
        "@trusted * ssh-ed25519 AAAA\n"                            # 8
        + hashed(sshd.known_hosts_lines(), tmp_path))              # 9..11
    with caplog.at_level(logging.WARNING, logger="upkeeper.ssh"):
        assert run_once(host_vars(ssh_known_hosts_file=str(kh))) == "ok\n"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for line in (5, 6, 7, 8):
        assert sum(f"{kh}:{line}: " in w for w in warned) == 1, warned
    assert not any(f"{kh}:{n}:" in w for w in warned for n in (1, 2, 3, 4, 9, 10, 11))
    # Parsed once per version of the file: a second connection warns no more.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="upkeeper.ssh"):
        assert run_once(host_vars(ssh_known_hosts_file=str(kh))) == "ok\n"
    assert not [r for r in caplog.records if "known_hosts" in r.getMessage()]


def test_revoked_key_is_refused_naming_the_line(host_vars: Vars, sshd: SSHServer,
                                                tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    # Recorded as known AND revoked: revocation wins, as in ssh.
    kh.write_text(sshd.known_hosts_lines() +
                  f"@revoked [127.0.0.1]:{sshd.port} {server_pub(sshd, 'ed25519')}\n")
    only_ed = tmp_path / "only_ed25519"
    only_ed.write_text("".join(line for line in kh.read_text().splitlines(True)
                               if "ed25519" in line))
    with pytest.raises(TransportError) as info:
        run_once(host_vars(ssh_known_hosts_file=str(only_ed)))
    assert info.value.status is Status.CRIT
    text = str(info.value)
    assert "HOST KEY FOR h1 IS REVOKED" in text
    assert f"{only_ed}:2 marks @revoked" in text
    assert "\n" not in text


def test_revoked_key_type_falls_back_to_another_known_key(host_vars: Vars, sshd: SSHServer,
                                                          tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text(f"@revoked * {server_pub(sshd, 'ed25519')}\n" + sshd.known_hosts_lines())
    lines = [ln for ln in kh.read_text().splitlines(True) if " ssh-ed25519 " not in ln
             or ln.startswith("@")]
    kh.write_text("".join(lines))
    assert run_once(host_vars(ssh_known_hosts_file=str(kh))) == "ok\n"


@pytest.mark.parametrize(("names", "name", "expected"), [
    ("web1,web2", "web2", True),
    ("WEB1", "web1", True),
    ("*.example.com", "db.example.com", True),
    ("*.example.com,!db.example.com", "db.example.com", False),
    ("!db.example.com,*.example.com", "db.example.com", False),
    ("web?", "web1", True),
    ("web?", "web12", False),
    ("[10.0.0.5]:2222", "[10.0.0.5]:2222", True),
    ("[10.0.0.5]:2222", "10.0.0.5", False),
    ("[10.0.0.*]:2222", "[10.0.0.7]:2222", True),
    ("10.0.0.5", "[10.0.0.5]:2222", False),
    ("!web1", "web1", False),
    ("!web1", "web2", False),
    ("|1|bad|hash", "web1", False),
])
def test_host_patterns(names: str, name: str, expected: bool) -> None:
    assert known_hosts.names_match(names, name) is expected


def test_hashed_names_match(tmp_path: Path) -> None:
    key = pub(keygen(tmp_path / "k", "ed25519"))
    text = hashed(f"[10.1.2.3]:2222 {key}\nweb1 {key}\n", tmp_path)
    parsed = known_hosts.parse(text, "kh")
    assert not parsed.warnings and all(e.hashed for e in parsed.entries)
    assert [e.line for e in parsed.entries if e.matches("[10.1.2.3]:2222")] == [1]
    assert [e.line for e in parsed.entries if e.matches("web1")] == [2]
    assert not any(e.matches("10.1.2.3") for e in parsed.entries)


def test_parse_reports_each_bad_line_once(tmp_path: Path) -> None:
    key = pub(keygen(tmp_path / "k", "ed25519"))
    text = (f"ok {key}\n"
            "  # indented comment\n"
            "\t\n"
            f"@revoked x {key}\n"
            f"@cert-authority y {key}\n"
            "short ssh-ed25519\n"
            "ssh1 1024 35 1234567\n"
            f"|1|x|y {key}\n"
            f"typo ssh-rsa {key.split()[1]}\n"
            f"tabs\t{key.replace(' ', chr(9))}\tcomment words\n")
    parsed = known_hosts.parse(text, "/kh")
    assert [(e.line, e.marker) for e in parsed.entries] == [
        (1, ""), (4, "revoked"), (5, "cert-authority"), (10, "")]
    assert [w.split(":")[1] for w in parsed.warnings] == ["6", "7", "8", "9"]
    assert all(w.startswith("/kh:") for w in parsed.warnings)


def test_known_hosts_cache_is_bounded_and_follows_the_file(tmp_path: Path) -> None:
    key = pub(keygen(tmp_path / "k", "ed25519"))
    for i in range(known_hosts.CACHE_SIZE * 3):
        f = tmp_path / f"kh{i}"
        f.write_text(f"host{i} {key}\n")
        assert [e.names for e in known_hosts.for_host(f"host{i}", [str(f)])] == [f"host{i}"]
    assert len(known_hosts._cache) <= known_hosts.CACHE_SIZE
    # The same path rewritten (another process's scan or forget) is read again.
    f = tmp_path / "kh0"
    f.write_text(f"other {key}\n")
    assert known_hosts.for_host("host0", [str(f)]) == []
    assert len(known_hosts.for_host("other", [str(f)])) == 1


def test_key_cache_is_bounded(tmp_path: Path) -> None:
    source = keygen(tmp_path / "k", "ed25519").read_bytes()
    for i in range(auth.KEY_CACHE_SIZE + 8):
        path = tmp_path / f"id_{i}"
        path.write_bytes(source)
        auth.load_key(str(path))
    assert len(auth._keys) <= auth.KEY_CACHE_SIZE
