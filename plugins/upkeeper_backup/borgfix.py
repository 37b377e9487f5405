"""``backup.borg.break_lock``: ``borg break-lock`` on a local repository, only when every
holder of its lock is stale.

The rules are restic's: a holder on this host whose PID no longer runs is stale; a
holder on another host is stale once the lock is older than ``stale_after`` (30 minutes
by default; borg does not refresh its lock, so raise it when another host's backups run
longer). A holder on this host whose process runs is never stale, however old.
``borg break-lock`` removes the whole lock, so with one live holder among stale ones the
fix refuses. The holders and the lock's age come from the repository's ``lock.roster``
and ``lock.exclusive`` (local repositories only: a remote one's are out of reach).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic import Field

from upkeeper import Fix, FixContext, FixRefused, Params, Plan, signature
from upkeeper.measures import Duration
from upkeeper_backup.borg import BorgParams, borg_env
from upkeeper_backup.locks import RESTIC_STALE_AFTER

#: Roster, lock age, the host's clock and its name, one per line. The roster is the
#: repository owner's file: opened without following a symlink (O_NOFOLLOW, and not
#: waiting on a FIFO) and at most 64 KiB, since what is read ends up in the audit trail.
_STATE = ('dd if="$1/lock.roster" iflag=nofollow,nonblock bs=65536 count=1 2>/dev/null'
          ' | tr -d "\\n"; echo; '
          'stat -c %Y -- "$1/lock.exclusive" 2>/dev/null || echo none; date +%s; uname -n')


class BreakLockParams(Params):
    stale_after: Duration = Field(RESTIC_STALE_AFTER, ge=RESTIC_STALE_AFTER,
                                  description="another host's lock older than this is stale")
    allow_shared: bool = Field(False, description="also act on repositories marked shared")


def holders(roster: str) -> list[tuple[str, int, int]]:
    """(host id, pid, thread) of each holder in borg 1.x ``lock.roster``."""
    try:
        data = json.loads(roster)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    out = []
    for kind in ("exclusive", "shared"):
        for entry in data.get(kind) or []:
            if (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[1], int)
                    and isinstance(entry[2], int)):
                out.append((str(entry[0]), entry[1], entry[2]))
    return out


def judge(holder: tuple[str, int, int], *, hostname: str, age: float | None,
          alive: bool | None, stale_after: timedelta) -> str | None:
    """Why the holder is stale, or None."""
    host = holder[0].rsplit("@", 1)[0]
    if host == hostname:
        return f"made on this host by PID {holder[1]}, which no longer runs" \
            if alive is False else None
    if age is not None and age > stale_after.total_seconds():
        return f"another host's lock older than {int(stale_after.total_seconds() // 60)} min"
    return None


class BorgBreakLock(Fix[BreakLockParams]):
    """Break a borg repository lock whose every holder is stale."""

    name = "backup.borg.break_lock"
    description = "borg break-lock when every holder of the lock is stale"
    Params = BreakLockParams
    handles = (signature("backup.borg", "WARN", "CRIT", summary="repository is locked"),)
    default_tier = "approve"
    needs_window = False
    settle = 60.0
    timeout = 300.0

    def _repo(self, ctx: FixContext[BreakLockParams]) -> tuple[BorgParams, str]:
        p = ctx.check_params
        if not isinstance(p, BorgParams):
            raise FixRefused("the borg check's params are not available")
        if p.shared and not ctx.params.allow_shared:
            raise FixRefused("the repository is marked shared: other hosts' locks are not "
                             "judged from here (set allow_shared: true on the fix to allow)")
        repo = p.repository.removeprefix("file://")
        if not repo.startswith("/"):
            raise FixRefused("only a local repository's lock holders can be read")
        return p, repo

    def survey(self, ctx: FixContext[BreakLockParams], p: BorgParams,
               repo: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(stale holders, live holders) of the repository's lock."""
        lines = ctx.run(["sh", "-c", _STATE, "sh", repo], sudo=p.sudo).check_ok(
            "reading the lock").stdout.splitlines()
        if len(lines) < 4:
            raise FixRefused("could not read the repository's lock")
        roster, made, now, hostname = lines[0], lines[1], float(lines[2]), lines[3].strip()
        age = now - float(made) if made.strip().isdigit() else None
        stale: list[dict[str, Any]] = []
        live: list[dict[str, Any]] = []
        for holder in holders(roster):
            alive = None
            if holder[0].rsplit("@", 1)[0] == hostname and holder[1] > 0:
                alive = ctx.run(["test", "-d", f"/proc/{holder[1]}"]).exit_code == 0
            why = judge(holder, hostname=hostname, age=age, alive=alive,
                        stale_after=ctx.params.stale_after)
            item = {"holder": holder[0], "pid": holder[1], "thread": holder[2],
                    "age_s": None if age is None else int(age)}
            (stale if why else live).append({**item, "why": why} if why else item)
        return stale, live

    def plan(self, ctx: FixContext[BreakLockParams]) -> Plan | None:
        p, repo = self._repo(ctx)
        stale, live = self.survey(ctx, p, repo)
        if not stale:
            return None
        if live:
            raise FixRefused(f"{len(live)} holder(s) of the lock still run: borg break-lock"
                             " would remove their lock too")
        return Plan(f"break the borg lock of {repo} ({len(stale)} stale holder"
                    f"{'s' if len(stale) > 1 else ''})", stale, [[p.borg_bin, "break-lock"]],
                    "no lock; the check runs again",
                    {"holders": sorted(f"{h['holder']}:{h['pid']}:{h['thread']}"
                                       for h in stale)})

    def apply(self, ctx: FixContext[BreakLockParams], plan: Plan) -> str:
        p, repo = self._repo(ctx)
        stale, live = self.survey(ctx, p, repo)
        now = sorted(f"{h['holder']}:{h['pid']}:{h['thread']}" for h in stale)
        if live or now != plan.data["holders"]:
            raise FixRefused("the lock's holders changed since the plan: planning again")
        env = borg_env(p)
        ctx.run([p.borg_bin, "break-lock"], env=env, sudo=p.sudo).check_ok("borg break-lock")
        return f"broke the lock of {repo}"
