"""disk.cleanup end to end in a private mount namespace (tests/remediation/
disk_scenario.py): check mode changes nothing, only old regular files under the
allow-listed globs go, a symlink to /etc is not followed, a hard link is kept, and the
planned bytes match the bytes freed within 1%."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from upkeeper.models import Host, Result, Status
from upkeeper.remediation.fix import FixContext, FixRefused
from upkeeper.transport.local import LocalTransport
from upkeeper_disk.cleanup import (
    CleanupParams,
    DiskCleanup,
    base_of,
    find_escape,
    parse_find,
)

SCENARIO = Path(__file__).with_name("disk_scenario.py")


def test_globs_and_escaping():
    assert base_of("/var/tmp/app/*.log") == "/var/tmp/app"
    assert base_of("/srv/a/*/b/*.gz") == "/srv/a"
    assert find_escape("/x/a[1]*?.log") == "/x/a\\[1\\]\\*\\?.log"
    assert parse_find("8\t/x/a b\0" "16\t/x/c\nd\0") == [(4096, "/x/a b"), (8192, "/x/c\nd")]
    for bad in (["/etc/*"], ["relative/*"], ["/srv/../etc/*"], ["/"], ["/var/*"]):
        with pytest.raises(ValueError):
            CleanupParams.model_validate({"paths": bad})


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare -m for a private tmpfs")
def test_cleanup_in_a_sandbox(tmp_path: Path) -> None:
    res = subprocess.run(["unshare", "-m", sys.executable, str(SCENARIO), str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         cwd=SCENARIO.parents[2])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["check_mode_unchanged"]
    assert [o["outcome"] for o in out["check_mode"]] == ["planned"]
    [outcome] = out["outcomes"]
    assert outcome["outcome"] == "fixed", outcome["summary"]
    deleted = sorted(c["delete"].rsplit("/", 2)[-1] for c in outcome["plan"]["changes"])
    assert deleted == ["old1.log", "old2.log"]
    assert set(out["left"]) >= {"app/new.log", "app/linked.log", "elsewhere.bin",
                                "app/etc-link", "app/passwd.log", "app/sub"}
    assert "app/old1.log" not in out["left"] and "app/sub/old2.log" not in out["left"]
    assert out["etc"] == ["group", "hosts", "passwd"]
    planned = outcome["plan"]["data"]["bytes"]
    assert abs(out["freed"] - planned) <= 0.01 * planned, (out["freed"], planned)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare -m for a private tmpfs")
def test_journal_vacuum_and_apt_clean_in_a_sandbox(tmp_path: Path) -> None:
    res = subprocess.run(["unshare", "-m", sys.executable, str(SCENARIO), str(tmp_path),
                          "caches"], capture_output=True, text=True, timeout=300,
                         cwd=SCENARIO.parents[2])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["check_mode_unchanged"]
    assert [o["outcome"] for o in out["check_mode"]] == ["planned"]
    [outcome] = out["outcomes"]
    assert outcome["outcome"] == "fixed", outcome["summary"]
    assert outcome["plan"]["commands"] == [["journalctl", "--vacuum-size=1048576"],
                                           ["apt-get", "clean"]]
    assert out["journal"] == ["system@4.journal"] and out["archives"] == []
    planned = outcome["plan"]["data"]["bytes"]
    assert abs(out["freed"] - planned) <= 0.01 * planned, (out["freed"], planned)


def _old_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(8192))
    t = path.stat().st_mtime - 30 * 86400
    os.utime(path, (t, t))


def _cleanup_ctx(glob: str) -> FixContext[CleanupParams]:
    host = Host("web1", vars={"ansible_connection": "local"}, groups=["all"])
    failing = Result(Status.CRIT, "/ is full", check="disk.usage",
                     details={"mounts": [{"mount": "/", "status": "CRIT"}]})
    return FixContext(host=host, transport=LocalTransport(host), result=failing,
                      params=CleanupParams.model_validate({"paths": [glob]}))


def test_a_symlink_above_the_glob_is_not_followed(tmp_path: Path) -> None:
    """``find -P`` does not follow links below its start, but the kernel follows one in
    the start's own path: ``app`` (writable by someone else) made a link to a victim's
    tree must not aim the deletion there."""
    _old_file(tmp_path / "victim" / "cache" / "secret.log")
    (tmp_path / "app").symlink_to(tmp_path / "victim")
    assert DiskCleanup().plan(_cleanup_ctx(f"{tmp_path}/app/cache/*.log")) is None
    assert (tmp_path / "victim" / "cache" / "secret.log").exists()


def test_a_directory_swapped_for_a_symlink_after_the_plan_is_not_followed(
        tmp_path: Path) -> None:
    """The plan names app/cache/secret.log in a real directory; before apply, ``app``
    becomes a link to a tree holding a file of the same name: apply refuses."""
    _old_file(tmp_path / "app" / "cache" / "secret.log")
    _old_file(tmp_path / "victim" / "cache" / "secret.log")
    ctx = _cleanup_ctx(f"{tmp_path}/app/cache/*.log")
    plan = DiskCleanup().plan(ctx)
    assert plan is not None and [c["delete"] for c in plan.changes] == [
        f"{tmp_path}/app/cache/secret.log"]
    (tmp_path / "app").rename(tmp_path / "app-was")
    (tmp_path / "app").symlink_to(tmp_path / "victim")
    with pytest.raises(FixRefused):
        DiskCleanup().apply(ctx, plan)
    assert (tmp_path / "victim" / "cache" / "secret.log").exists()
