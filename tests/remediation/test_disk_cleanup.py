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

from upkeeper_disk.cleanup import CleanupParams, base_of, find_escape, parse_find

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
