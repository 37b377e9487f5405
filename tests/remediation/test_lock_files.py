"""Lock files are the repository owner's to plant: a backup user who owns a repository
must not get root to copy another file into the audit trail (which dashboard viewers
read) by making ``lock.roster`` a symlink."""

from __future__ import annotations

from pathlib import Path

from upkeeper.models import Host, Result, Status
from upkeeper.remediation.fix import FixContext
from upkeeper.transport.local import LocalTransport
from upkeeper_backup.borg import BorgParams
from upkeeper_backup.borgfix import BorgBreakLock, BreakLockParams

SECRET = "root:$6$not-for-the-audit-trail$0123456789"


def _ctx(repo: Path) -> FixContext[BreakLockParams]:
    host = Host("backup1", vars={"ansible_connection": "local"}, groups=["all"])
    failing = Result(Status.CRIT, "repository is locked", check="backup.borg",
                     name="backup.borg")
    return FixContext(host=host, transport=LocalTransport(host), result=failing,
                      params=BreakLockParams(),
                      check_params=BorgParams.model_validate({"repository": str(repo)}))


def test_a_symlinked_lock_roster_is_not_read(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(SECRET + "\n")
    repo = tmp_path / "repo"
    (repo / "lock.exclusive").mkdir(parents=True)
    (repo / "lock.roster").symlink_to(shadow)
    ctx = _ctx(repo)
    assert BorgBreakLock().plan(ctx) is None  # no holders it can read: nothing to do
    recorded = "".join(c["stdout"] + c["stderr"] for c in ctx.commands)
    assert "not-for-the-audit-trail" not in recorded


def test_a_regular_lock_roster_is_still_read(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "lock.exclusive").mkdir(parents=True)
    (repo / "lock.roster").write_text('{"exclusive": [["elsewhere@1", 4242, 0]]}')
    stale, live = BorgBreakLock().survey(_ctx(repo), BorgParams.model_validate(
        {"repository": str(repo)}), str(repo))
    assert stale == [] and [h["holder"] for h in live] == ["elsewhere@1"]
