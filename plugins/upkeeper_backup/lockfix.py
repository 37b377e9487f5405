"""``backup.restic.unlock``: remove stale restic locks, and only those.

A lock is stale when it is older than 30 minutes (restic refreshes a live lock every 5),
or when it was made on this very host by a process that no longer exists. A fresh lock
of another host is never touched: nothing here can tell whether its process lives.

How the removal is done, and why: ``restic unlock`` removes every lock that *restic*
thinks stale at the moment it runs, which can be more than the plan showed (a lock
turning 30 minutes old in between; restic also calls a lock of another user's live
process dead, since its signal 0 fails with EPERM). So for a local repository the fix
deletes exactly the planned lock files by id (``locks/<id>``, which is what restic's own
backend does); lock ids are content hashes and a refreshed lock gets a new id, so a
planned id can never be a live lock. For other backends it re-reads the locks and runs
``restic unlock`` (never ``--remove-all``) only when restic's stale set is exactly the
planned one; otherwise it refuses and plans again next run.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from upkeeper import Fix, FixContext, FixRefused, Params, Plan, signature
from upkeeper.measures import Duration
from upkeeper_backup.locks import RESTIC_STALE_AFTER
from upkeeper_backup.restic import ResticParams, restic_env

_LOCK_ID = re.compile(r"^[0-9a-f]{64}$")


class UnlockParams(Params):
    stale_after: Duration = Field(RESTIC_STALE_AFTER, ge=RESTIC_STALE_AFTER,
                                  description="a lock older than this is stale (at least"
                                              " 30m: restic refreshes live locks every 5)")
    allow_shared: bool = Field(False, description="also act on repositories marked shared")


def _age(text: str, now: float) -> float | None:
    """Seconds since restic's lock ``time`` (RFC 3339 with nanoseconds)."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if m is None:
        return None
    stamp = datetime.fromisoformat(m.group(1) + (m.group(2) or "")[:7]
                                   + (m.group(3).replace("Z", "+00:00")))
    return now - stamp.timestamp()


def classify(lock: dict[str, Any], *, now: float, hostname: str, alive: bool | None,
             stale_after: timedelta) -> str | None:
    """Why ``lock`` is stale, or None when it must stay."""
    age = _age(str(lock.get("time", "")), now)
    if age is None:
        return None
    if age > stale_after.total_seconds():
        return f"older than {int(stale_after.total_seconds() // 60)} min"
    if lock.get("hostname") == hostname and alive is False:
        return f"made on this host by PID {lock.get('pid')}, which no longer runs"
    return None


class ResticUnlock(Fix[UnlockParams]):
    """Remove stale restic locks (old, or of this host with a dead PID)."""

    name = "backup.restic.unlock"
    description = "Remove stale restic repository locks, never live ones"
    Params = UnlockParams
    handles = (signature("backup.restic", "WARN", "CRIT", summary="repository is locked"),)
    default_tier = "approve"
    needs_window = False
    settle = 60.0
    timeout = 600.0

    def _repo(self, ctx: FixContext[UnlockParams]) -> ResticParams:
        p = ctx.check_params
        if not isinstance(p, ResticParams):
            raise FixRefused("the restic check's params are not available")
        if p.shared and not ctx.params.allow_shared:
            raise FixRefused("the repository is marked shared: other hosts' locks are not "
                             "judged from here (set allow_shared: true on the fix to allow)")
        return p

    def _restic(self, ctx: FixContext[UnlockParams], p: ResticParams,
                *args: str) -> str:
        res = ctx.run([p.restic_bin, *args], env=restic_env(p), sudo=p.sudo,
                      timeout=p.tool_timeout)
        return res.check_ok(f"restic {args[0]} {args[1] if len(args) > 1 else ''}").stdout

    def stale_locks(self, ctx: FixContext[UnlockParams],
                    p: ResticParams) -> list[dict[str, Any]]:
        ids = [i for i in self._restic(ctx, p, "list", "locks", "--no-lock").split()
               if _LOCK_ID.match(i)]
        if not ids:
            return []
        facts = ctx.run(["sh", "-c", "uname -n; date +%s"]).check_ok("uname/date").stdout
        hostname, now = facts.split()[0], float(facts.split()[1])
        out = []
        for lock_id in ids:
            try:
                lock = json.loads(self._restic(ctx, p, "cat", "lock", "--no-lock", "--",
                                               lock_id))
            except ValueError:
                continue
            pid = lock.get("pid")
            alive = None
            if lock.get("hostname") == hostname and isinstance(pid, int) and pid > 0:
                alive = ctx.run(["test", "-d", f"/proc/{pid}"]).exit_code == 0
            why = classify(lock, now=now, hostname=hostname, alive=alive,
                           stale_after=ctx.params.stale_after)
            if why is not None:
                age = _age(str(lock.get("time")), now) or 0.0
                out.append({"id": lock_id, "age_s": int(age), "host": lock.get("hostname"),
                            "pid": pid, "exclusive": bool(lock.get("exclusive")),
                            "why": why})
        return out

    def plan(self, ctx: FixContext[UnlockParams]) -> Plan | None:
        p = self._repo(ctx)
        stale = self.stale_locks(ctx, p)
        if not stale:
            return None
        repo = p.repository.removeprefix("local:")
        local = repo.startswith("/")
        commands = ([["rm", "-f", "--", f"{repo.rstrip('/')}/locks/{lock['id']}"]
                     for lock in stale] if local else [[p.restic_bin, "unlock"]])
        return Plan(f"remove {len(stale)} stale restic lock{'s' if len(stale) > 1 else ''}",
                    stale, commands, "no stale lock left; the check runs again",
                    {"ids": sorted(lock["id"] for lock in stale), "local": local})

    def apply(self, ctx: FixContext[UnlockParams], plan: Plan) -> str:
        p = self._repo(ctx)
        planned = list(plan.data["ids"])
        if not plan.data.get("local"):
            now = sorted(lock["id"] for lock in self.stale_locks(ctx, p))
            if now != planned:
                raise FixRefused("the stale locks changed since the plan "
                                 f"({len(now)} now, {len(planned)} planned): planning again")
            self._restic(ctx, p, "unlock")
            return f"restic unlock removed {len(planned)} stale locks"
        for command in plan.commands:
            if not (command[:3] == ["rm", "-f", "--"] and
                    command[3].rsplit("/", 1)[-1] in planned):
                raise FixRefused(f"unexpected command in the plan: {command}")
            ctx.run(command, sudo=p.sudo).check_ok(f"removing lock {command[3]}")
        return f"removed {len(planned)} stale lock files"
