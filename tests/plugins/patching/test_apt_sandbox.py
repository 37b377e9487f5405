"""``patching.apply`` with the real apt and dpkg, isolated from this machine's packages.

Every command runs in a private mount namespace (``unshare -m``) with temp dirs bound over
/etc/apt, /var/lib/apt, /var/lib/dpkg, /var/cache/apt and /var/log, so apt sees only two
tiny test packages installed at 1.0 and a local file repository offering 1.1 (one from a
``-security`` suite). The machine's own packages and sources are never touched.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from upkeeper.models import CommandResult, Status
from upkeeper.store.history import History
from upkeeper.testing import make_host, run_check
from upkeeper.transport.base import command_text
from upkeeper.transport.local import LocalTransport
from upkeeper_patching.apply import PatchApply
from upkeeper_patching.checks import PatchStatus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare")
                       or not shutil.which("apt-get") or not shutil.which("dpkg-deb"),
                       reason="needs root, unshare, apt-get and dpkg-deb"),
]

BINDS = (("etc-apt", "/etc/apt"), ("var-lib-apt", "/var/lib/apt"),
         ("var-lib-dpkg", "/var/lib/dpkg"), ("var-cache-apt", "/var/cache/apt"),
         ("var-log", "/var/log"))
PACKAGES = {"upk-secfix": "upk-security", "upk-feature": "upk"}
#: Offered at 1.0 only, not installed: installing it pulls the upk-feature upgrade.
TOOL = ("upk-tool", "upk", "upk-feature (>= 1.1)")


class SandboxTransport(LocalTransport):
    """Runs each command in a fresh mount namespace with the sandbox dirs bound in place."""

    name = "sandbox"

    def __init__(self, host: object, root: Path) -> None:
        super().__init__(host)  # type: ignore[arg-type]
        self.root = root

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            sudo: bool = False, stdin: str | bytes | None = None,
            env: Mapping[str, str] | None = None) -> CommandResult:
        binds = " && ".join(f"mount --bind {shlex.quote(str(self.root / src))} {dst}"
                            for src, dst in BINDS)
        wrapped = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   f'{binds} && exec sh -c "$1"', "sandbox", command_text(command)]
        res = super().run(wrapped, timeout=timeout, sudo=sudo, stdin=stdin, env=env)
        res.command = command_text(command)
        return res


def _deb(work: Path, name: str, version: str, depends: str = "") -> Path:
    pkg = work / f"{name}_{version}"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "usr" / "share" / "doc" / name).mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        + (f"Depends: {depends}\n" if depends else "")
        + "Maintainer: upkeeper tests <tests@example.invalid>\n"
        f"Description: upkeeper patching test package {version}\n")
    out = work / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(pkg), str(out)],
                   check=True, capture_output=True)
    return out


def _repo(root: Path, debs: dict[str, tuple[str, Path]], arch: str) -> Path:
    """A flat file repository: ``debs`` maps each package name to (suite, .deb)."""
    repo = root / "repo"
    (repo / "pool").mkdir(parents=True)
    stanzas: dict[str, bytes] = {}
    for suite, deb in debs.values():
        target = repo / "pool" / deb.name
        shutil.copy(deb, target)
        blob = target.read_bytes()
        control = subprocess.run(["dpkg-deb", "-f", str(target)], check=True,
                                 capture_output=True, text=True).stdout.strip()
        stanzas[suite] = stanzas.get(suite, b"") + (
            f"{control}\nFilename: pool/{deb.name}\nSize: {len(blob)}\n"
            f"SHA256: {hashlib.sha256(blob).hexdigest()}\n\n").encode()
    for suite, packages in stanzas.items():
        bindir = repo / "dists" / suite / "main" / f"binary-{arch}"
        bindir.mkdir(parents=True)
        (bindir / "Packages").write_bytes(packages)
        rel = f"main/binary-{arch}/Packages"
        (repo / "dists" / suite / "Release").write_text(
            f"Origin: upkeeper-test\nLabel: upkeeper-test\nSuite: {suite}\nCodename: {suite}\n"
            f"Architectures: {arch} all\nComponents: main\n"
            f"Date: Thu, 01 Jan 2026 00:00:00 UTC\nSHA256:\n"
            f" {hashlib.sha256(packages).hexdigest()} {len(packages)} {rel}\n")
    return repo


@pytest.fixture
def sandbox(tmp_path: Path) -> SandboxTransport:
    arch = subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True,
                          text=True).stdout.strip()
    for src, _ in BINDS:
        (tmp_path / src).mkdir()
    etc = tmp_path / "etc-apt"
    for sub in ("apt.conf.d", "preferences.d", "sources.list.d", "trusted.gpg.d"):
        (etc / sub).mkdir()
    (etc / "apt.conf.d" / "00sandbox").write_text(
        'APT::Sandbox::User "root";\nAcquire::Languages "none";\n')
    dpkg = tmp_path / "var-lib-dpkg"
    for sub in ("info", "updates", "triggers", "alternatives"):
        (dpkg / sub).mkdir()
    (dpkg / "status").write_text("")
    (dpkg / "available").write_text("")
    (dpkg / "arch").write_text(f"{arch}\n")
    (tmp_path / "var-lib-apt" / "lists" / "partial").mkdir(parents=True)
    (tmp_path / "var-cache-apt" / "archives" / "partial").mkdir(parents=True)
    (tmp_path / "var-log" / "apt").mkdir(parents=True)
    work = tmp_path / "build"
    old = {n: _deb(work, n, "1.0") for n in PACKAGES}
    offered = {n: (suite, _deb(work, n, "1.1")) for n, suite in PACKAGES.items()}
    offered[TOOL[0]] = (TOOL[1], _deb(work, TOOL[0], "1.0", depends=TOOL[2]))
    repo = _repo(tmp_path, offered, arch)
    (etc / "sources.list").write_text(
        f"deb [trusted=yes] file:{repo} upk-security main\n"
        f"deb [trusted=yes] file:{repo} upk main\n")
    t = SandboxTransport(make_host("sandbox"), tmp_path)
    res = t.run(["dpkg", "-i", *[str(p) for p in old.values()]])
    assert res.ok, res.stderr
    res = t.run(["apt-get", "update", "-q"])
    assert res.ok, res.stderr
    return t


def versions(t: SandboxTransport) -> dict[str, str]:
    out = t.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n"]).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def test_status_check_and_apply_on_real_apt(sandbox):
    host = sandbox.host
    machine_before = subprocess.run(["dpkg-query", "-W"], capture_output=True, text=True,
                                    check=True).stdout
    history = History(":memory:")

    [status] = run_check(PatchStatus, {}, host=host, transport=sandbox, history=history)
    assert status.status is Status.WARN, status.summary
    assert status.metrics["pending_total"] == 2 and status.metrics["pending_security"] == 1
    assert {u["name"]: u["security"] for u in status.details["updates"]} == {
        "upk-secfix": True, "upk-feature": False}

    [sim] = run_check(PatchApply, {"reboot": "never"}, host=host, transport=sandbox,
                      history=history, check_mode=True)
    assert sim.status is Status.OK and not sim.changed
    assert [u["name"] for u in sim.details["would_install"]] == ["upk-secfix"]
    assert versions(sandbox) == {"upk-secfix": "1.0", "upk-feature": "1.0"}

    [done] = run_check(PatchApply, {"reboot": "never"}, host=host, transport=sandbox,
                       history=history)
    assert done.status is Status.OK, done.summary
    assert done.changed and done.details["installed"] == [
        {"name": "upk-secfix", "from": "1.0", "to": "1.1"}]
    assert versions(sandbox) == {"upk-secfix": "1.1", "upk-feature": "1.0"}
    assert [u["name"] for u in done.details["pending_after"]] == ["upk-feature"]

    [again] = run_check(PatchStatus, {}, host=host, transport=sandbox, history=history)
    assert again.status is Status.OK and again.metrics["pending_security"] == 0
    assert again.metrics["days_since_patch"] < 0.01  # the apt history log of the sandbox

    [full] = run_check(PatchApply, {"scope": "all", "reboot": "never"}, host=host,
                       transport=sandbox, history=history)
    assert full.status is Status.OK and full.details["installed"] == [
        {"name": "upk-feature", "from": "1.0", "to": "1.1"}]
    assert versions(sandbox) == {"upk-secfix": "1.1", "upk-feature": "1.1"}

    machine_after = subprocess.run(["dpkg-query", "-W"], capture_output=True, text=True,
                                   check=True).stdout
    assert machine_before == machine_after


def test_install_pulling_an_upgrade_is_not_a_patch(sandbox):
    """Issue 13 item 5 on the real apt: installing a package that pulls an upgraded
    dependency leaves ``days_since_patch`` alone while a security update stays pending;
    bringing the security updates to zero resets it."""
    host = sandbox.host
    history = History(":memory:")
    last_upgrade = datetime.now() - timedelta(days=40)  # apt logs local time
    log = sandbox.root / "var-log" / "apt" / "history.log"
    log.write_text(f"Start-Date: {last_upgrade:%Y-%m-%d  %H:%M:%S}\n"
                   "Commandline: apt-get -y upgrade\n"
                   "Upgrade: upk-secfix:all (0.9, 1.0), upk-feature:all (0.9, 1.0)\n"
                   f"End-Date: {last_upgrade:%Y-%m-%d  %H:%M:%S}\n\n")

    [before] = run_check(PatchStatus, {}, host=host, transport=sandbox, history=history)
    assert before.metrics["pending_security"] == 1
    assert 39.9 < before.metrics["days_since_patch"] < 40.1

    res = sandbox.run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
                       "-q", TOOL[0]])
    assert res.ok, res.stderr
    assert versions(sandbox)["upk-feature"] == "1.1"  # upgraded as a dependency
    assert "Upgrade: upk-feature" in log.read_text()

    [after_install] = run_check(PatchStatus, {}, host=host, transport=sandbox,
                                history=history)
    assert after_install.metrics["pending_security"] == 1
    assert 39.9 < after_install.metrics["days_since_patch"] < 40.1
    assert after_install.status is Status.WARN

    [done] = run_check(PatchApply, {"reboot": "never"}, host=host, transport=sandbox,
                       history=history)
    assert done.status is Status.OK and done.changed
    [patched] = run_check(PatchStatus, {}, host=host, transport=sandbox, history=history)
    # `apt-get install --only-upgrade upk-secfix` is no full upgrade, but the check saw
    # the security updates brought to zero.
    assert patched.metrics["pending_security"] == 0
    assert patched.metrics["days_since_patch"] < 0.01
    assert patched.details["last_patched_from"] == "observed"
