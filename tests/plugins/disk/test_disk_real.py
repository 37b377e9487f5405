"""disk.usage on this machine: local transport, busybox df, odd real mounts, SSH, the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from upkeeper import Host, Result, Status
from upkeeper.store.history import History
from upkeeper.testing import make_host, run_check
from upkeeper.transport.local import LocalTransport
from upkeeper_disk.usage import DiskUsage

from .helpers import DATA, REPO

KB = 1024
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux df")


def local_run(params: dict[str, Any] | None = None) -> Result:
    host = make_host("localhost")
    [res] = run_check(DiskUsage, params or {}, host=host, transport=LocalTransport(host))
    return res


def assert_matches_statvfs(mounts: list[dict[str, Any]]) -> None:
    for m in mounts:
        st = os.statvfs(m["mount"])
        size = st.f_blocks * st.f_frsize
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        # df rounds to whole KiB and files change between the two reads.
        assert abs(m["size_bytes"] - size) <= KB, m
        assert abs(m["used_bytes"] - used) <= 256 * KB * KB, m


def test_real_df_on_this_machine() -> None:
    res = local_run()
    assert res.status is not Status.UNKNOWN, res.summary
    mounts = res.details["mounts"]
    assert "/" in {m["mount"] for m in mounts}
    assert_matches_statvfs(mounts)
    for m in mounts:
        assert res.metrics[f"{m['mount']}:used_bytes"] == m["used_bytes"]
        assert 0 <= res.metrics[f"{m['mount']}:used_pct"] <= 100
        assert m["fstype"]  # from df -T or /proc/mounts


def test_real_df_every_filesystem_when_pseudo_included() -> None:
    res = local_run({"exclude_pseudo": False})
    shown = {m["mount"] for m in res.details["mounts"]}
    proc = {line.split()[1].replace("\\040", " ") for line in
            Path("/proc/mounts").read_text().splitlines()}
    assert shown <= proc
    assert_matches_statvfs(res.details["mounts"])


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed")
def test_real_busybox_df(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "df").symlink_to(shutil.which("busybox") or "busybox")
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    assert subprocess.run(["df", "--version"], capture_output=True).returncode != 0
    res = local_run()
    assert res.status is not Status.UNKNOWN, res.summary
    assert "/" in {m["mount"] for m in res.details["mounts"]}
    assert_matches_statvfs(res.details["mounts"])


def _mount(*argv: str) -> bool:
    return subprocess.run(["mount", *argv], capture_output=True).returncode == 0


def fill(directory: Path) -> None:
    """Write until the filesystem has no blocks, then create files until no inodes."""
    fd = os.open(directory / "blob", os.O_WRONLY | os.O_CREAT, 0o600)
    # Writing stops with ENOSPC: that is the point.
    with contextlib.suppress(OSError):
        while os.write(fd, b"\0" * 65536) > 0:
            pass
    os.close(fd)
    for i in range(64):
        try:
            (directory / f"f{i}").touch()
        except OSError:
            break


#: Set only in the pytest that test_real_odd_mounts starts in its own mount namespace: the
#: pid of the pytest that started it, which must never see the mounts.
IN_PRIVATE_NS = "UPK_DISK_TEST_IN_PRIVATE_MOUNT_NS"


def make_odd_mounts(base: Path) -> Path:
    """Real tmpfs mounts under ``base``: a name with spaces, a full one (blocks and inodes),
    a read-only one. Only ever called inside a private mount namespace."""
    outside = os.environ.get(IN_PRIVATE_NS, "")
    if not outside.isdigit():
        raise RuntimeError("odd mounts are made only in a private mount namespace")
    spaced, full, ro = base / "Client Data", base / "full", base / "ro"
    for d in (spaced, full, ro):
        d.mkdir(parents=True)
    if not _mount("-t", "tmpfs", "-o", "size=8m", "upk-spaced", str(spaced)):
        pytest.skip("mount is not permitted here")
    assert _mount("-t", "tmpfs", "-o", "size=1m,nr_inodes=16", "upk-full", str(full))
    assert _mount("-t", "tmpfs", "-o", "size=4m,ro", "upk-ro", str(ro))
    fill(full)
    assert "upk-spaced" not in Path(f"/proc/{outside}/mounts").read_text(), \
        "the test mounts leak out of their private namespace"
    return base


@pytest.mark.slow
def test_real_odd_mounts(tmp_path: Path) -> None:
    """Runs itself again in a private mount namespace (unshare -m) and mounts there, so no
    tmpfs is ever visible to this machine (another df, a disk check) or left behind."""
    if IN_PRIVATE_NS not in os.environ:
        if os.geteuid() != 0 or shutil.which("mount") is None or shutil.which("unshare") is None:
            pytest.skip("mounting in a private namespace needs root, mount and unshare")
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-m",
             "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "ns"),
             f"{Path(__file__).resolve()}::test_real_odd_mounts"],
            env={**os.environ, IN_PRIVATE_NS: str(os.getpid())}, cwd=REPO,
            capture_output=True, text=True, timeout=300, check=False)
        out = proc.stdout + proc.stderr
        if proc.returncode == 0 and "1 skipped" in out:
            pytest.skip("mount is not permitted here")
        assert proc.returncode == 0 and "1 passed" in out, out[-3000:]
        return
    odd_mounts = make_odd_mounts(tmp_path / "mnt")
    res = local_run({"include_fstypes": ["tmpfs"], "include_mounts": [f"{odd_mounts}/*"]})
    mounts = {m["mount"]: m for m in res.details["mounts"]}
    spaced, full, ro = (str(odd_mounts / n) for n in ("Client Data", "full", "ro"))
    assert set(mounts) == {spaced, full, ro}
    assert mounts[spaced]["device"] == "upk-spaced" and mounts[spaced]["status"] == "OK"
    assert mounts[full]["used_pct"] == 100 and mounts[full]["inodes_used_pct"] == 100
    assert mounts[ro]["readonly"] is True
    assert res.status is Status.CRIT
    assert res.summary.startswith(f"{full} 100% used, 0 B free, inodes 100% used")
    assert_matches_statvfs(list(mounts.values()))
    assert res.metrics[f"{spaced}:size_bytes"] == 8 * KB * KB


@pytest.mark.sshd
def test_disk_usage_over_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pwd

    ssh = pytest.importorskip("upkeeper_ssh")
    testserver = pytest.importorskip("upkeeper_ssh.testserver")
    if testserver.find_sshd() is None:
        pytest.skip("sshd is not installed")
    if os.geteuid() != 0 and not Path("/run/sshd").is_dir():
        pytest.skip("/run/sshd is missing")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    user = pwd.getpwuid(os.geteuid()).pw_name
    srv = testserver.SSHServer(tmp_path / "sshd")
    srv.authorize(user)
    srv.start()
    try:
        known = tmp_path / "known_hosts"
        known.write_text(srv.known_hosts_lines())
        host = Host("target", vars={
            "ansible_host": "127.0.0.1", "ansible_port": srv.port, "ansible_user": user,
            "ansible_ssh_private_key_file": str(srv.client_key),
            "ssh_known_hosts_file": str(known)})
        transport = ssh.SSHTransport(host)
        try:
            host.facts.update(transport.gather_facts())
            [res] = run_check(DiskUsage, {}, host=host, transport=transport)
        finally:
            transport.close()
    finally:
        srv.stop()
    assert res.status is not Status.UNKNOWN, res.summary
    assert "/" in {m["mount"] for m in res.details["mounts"]}
    assert_matches_statvfs(res.details["mounts"])


@pytest.mark.slow
def test_cli_run_twice_stores_metrics_in_history(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "UPKEEPER_STATE_DIR": str(state)}
    playbook = DATA / "disk-health.yml"
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "upkeeper", "run", str(playbook),
                               "--format", "json"], capture_output=True, text=True, env=env,
                              timeout=120)
        assert proc.returncode in (0, 1, 2), proc.stderr
        runs.append(json.loads(proc.stdout))
    usage = [next(r for r in run["results"] if r["check"] == "disk.usage") for run in runs]
    assert all(u["host"] == "localhost" and u["status"] != "UNKNOWN" for u in usage)
    assert "/:used_bytes" in usage[0]["metrics"]
    smart = next(r for r in runs[0]["results"] if r["check"] == "disk.smart")
    assert smart["status"] in ("OK", "WARN", "CRIT", "SKIPPED", "UNKNOWN")
    hist = History(state / "history.sqlite3")
    try:
        series = hist.series("localhost", "/:used_bytes", check="disk.usage")
        assert len(series) == 2
        assert [v for _, v in series] == [u["metrics"]["/:used_bytes"] for u in usage]
        assert hist.series("localhost", "/:inodes_used_pct")
    finally:
        hist.close()
    proc = subprocess.run([sys.executable, "-m", "upkeeper", "history", "--metric",
                           "/:used_pct", "--host", "localhost", "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    points = json.loads(proc.stdout)
    assert [p["value"] for p in points] == [u["metrics"]["/:used_pct"] for u in usage]
