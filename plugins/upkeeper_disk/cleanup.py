"""``disk.cleanup``: free space on a filesystem ``disk.usage`` reports full, by deleting
old files under allow-listed globs, vacuuming the journal, cleaning package caches.

Files: only regular files with one link (deleting a hard link frees nothing), older than
``older_than``, matching an allow-listed glob (``*`` stays within one path component),
on a filesystem the check reported WARN/CRIT. ``find -P -xdev`` never follows a symlink
and never leaves the filesystem, neither while planning nor while deleting: deletion is
``find ... -path FILE -delete`` from the glob's base, so a directory swapped for a
symlink between plan and apply is not traversed. The glob's base itself must be
reached without a symlink, checked when planning and again right before deleting.
Planned bytes are allocated bytes (``%b`` blocks), what ``df`` sees come back. Needs
GNU find (``-printf``). Windows (temp folders, component store):
:mod:`upkeeper_disk.wincleanup`.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from pydantic import Field, field_validator

from upkeeper import Fix, FixContext, FixRefused, Params, Plan, Result, signature
from upkeeper.argv import check_path
from upkeeper.measures import Duration, Size, format_size

_GLOB = re.compile(r"[*?\[]")
#: Bases no glob may start from: a typo there would empty the system.
_REFUSED_BASES = {"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc",
                  "/root", "/run", "/sbin", "/sys", "/usr", "/var", "/home"}
_BATCH = 200
_JOURNAL = "/var/log/journal"
_CACHES = {"apt": ("/var/cache/apt/archives", ["apt-get", "clean"]),
           "dnf": ("/var/cache/dnf", ["dnf", "clean", "all"])}


class CleanupParams(Params):
    paths: list[str] = Field(default_factory=list,
                             description="allow-listed globs of files that may be deleted "
                                         "(absolute; * within one path component)")
    older_than: Duration = Field("7d", validate_default=True,
                                 description="only files not modified for this long")
    journal_max: Size | None = Field(None, description="journalctl --vacuum-size to this")
    package_caches: list[str] = Field(default_factory=list,
                                      description="apt and/or dnf: clean their caches")
    sudo: bool = Field(False, description="run the deletions as root")
    windows_temp: bool = Field(False, description="Windows: old files of the system's and "
                                                  "each user's temp folder")
    component_store: bool = Field(False, description="Windows: DISM /StartComponentCleanup"
                                                     " when DISM recommends it")

    @field_validator("paths")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for glob in v:
            check_path(glob)
            if not glob.startswith("/") or ".." in PurePosixPath(glob).parts:
                raise ValueError(f"{glob!r}: an absolute glob without '..'")
            if base_of(glob) in _REFUSED_BASES or base_of(glob) == glob:
                raise ValueError(f"{glob!r}: needs a glob under a directory other than "
                                 f"{base_of(glob)}")
        return v

    @field_validator("package_caches")
    @classmethod
    def _caches(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in _CACHES:
                raise ValueError(f"package cache {name!r}: one of {', '.join(_CACHES)}")
        return v


def base_of(glob: str) -> str:
    """The deepest directory of ``glob`` before its first wildcard."""
    parts = PurePosixPath(glob).parts
    fixed = []
    for part in parts:
        if _GLOB.search(part):
            break
        fixed.append(part)
    if len(fixed) == len(parts):
        return glob
    return str(PurePosixPath(*fixed))


def mount_of(path: str, mounts: list[str]) -> str | None:
    best = None
    for m in mounts:
        inside = path == m or path.startswith(m.rstrip("/") + "/")
        if inside and (best is None or len(m) > len(best)):
            best = m
    return best


def find_escape(path: str) -> str:
    """``path`` as a literal ``find -path`` pattern."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", path)


def failing_mounts(result: Result) -> tuple[list[str], list[str]]:
    """(failing mounts, every mount) of a ``disk.usage`` result."""
    details = result.details if isinstance(result.details, dict) else {}
    rows = [m for m in details.get("mounts") or [] if isinstance(m, dict)]
    return ([str(m["mount"]) for m in rows if m.get("status") in ("WARN", "CRIT")],
            [str(m["mount"]) for m in rows if "mount" in m])


def parse_find(text: str) -> list[tuple[int, str]]:
    """``%b\\t%p\\0`` records of find: (allocated bytes, path)."""
    out = []
    for record in text.split("\0"):
        blocks, sep, path = record.lstrip("\n").partition("\t")
        if sep and blocks.isdigit() and path:
            out.append((int(blocks) * 512, path))
    return out


class DiskCleanup(Fix[CleanupParams]):
    """Delete old files under allow-listed globs, vacuum the journal, clean caches."""

    name = "disk.cleanup"
    description = "Free space: old files under allow-listed globs, journal, package caches"
    Params = CleanupParams
    handles = (signature("disk.usage", "WARN", "CRIT"),)
    platforms = ("linux", "windows")
    default_tier = "approve"
    needs_window = False
    settle = 300.0
    timeout = 900.0

    def _base_ok(self, ctx: FixContext[CleanupParams], base: str) -> bool:
        """Whether ``base`` exists and is reached without a symlink: ``find -P`` does not
        follow links below its start, but the kernel follows any in the start's own
        path, so a directory above the tree swapped for a link would aim the deletion
        elsewhere. False when it does not exist or is reached through a link."""
        res = ctx.run(["realpath", "-e", "--", base], sudo=ctx.params.sudo)
        if res.exit_code != 0:
            return False
        real = res.stdout.rstrip("\n")
        if real != base:
            ctx.log.warning("%s: not cleaned, it is reached through a symlink (it is %s)",
                            base, real)
            return False
        return True

    def _files(self, ctx: FixContext[CleanupParams], glob: str) -> list[tuple[int, str]]:
        base = base_of(glob)
        if not self._base_ok(ctx, base):
            return []  # no such directory (yet), or a link: nothing to clean there
        depth = len(PurePosixPath(glob).parts) - len(PurePosixPath(base).parts)
        minutes = int(ctx.params.older_than.total_seconds() // 60)
        res = ctx.run(["find", "-P", base, "-xdev", "-mindepth", "1", "-maxdepth",
                       str(depth), "-type", "f", "-links", "1", "-mmin", f"+{minutes}",
                       "-printf", "%b\\t%p\\0"], sudo=ctx.params.sudo)
        if res.exit_code != 0 and not res.stdout:
            return []  # no such directory (yet): nothing to clean there
        return [(n, p) for n, p in parse_find(res.stdout)
                if PurePosixPath(p).match(glob) and p.startswith(base.rstrip("/") + "/")]

    def plan(self, ctx: FixContext[CleanupParams]) -> Plan | None:
        failing, mounts = failing_mounts(ctx.result)
        if not failing:
            raise FixRefused("the disk.usage result names no full filesystem")
        if ctx.is_windows:
            from upkeeper_disk.wincleanup import plan_windows

            return plan_windows(ctx, failing)
        p = ctx.params
        changes: list[dict[str, Any]] = []
        commands: list[list[str]] = []
        minutes = int(p.older_than.total_seconds() // 60)
        seen: set[str] = set()
        for glob in p.paths:
            base = base_of(glob)
            if mount_of(base, mounts) not in failing:
                continue
            files = sorted({f for f in self._files(ctx, glob) if f[1] not in seen},
                           key=lambda f: f[1])
            seen.update(path for _n, path in files)
            depth = len(PurePosixPath(glob).parts) - len(PurePosixPath(base).parts)
            for start in range(0, len(files), _BATCH):
                batch = files[start:start + _BATCH]
                alternatives: list[str] = []
                for _n, path in batch:
                    alternatives += ["-o", "-path", find_escape(path)]
                commands.append(["find", "-P", base, "-xdev", "-mindepth", "1", "-maxdepth",
                                 str(depth), "-type", "f", "-links", "1", "-mmin",
                                 f"+{minutes}", "(", *alternatives[1:], ")", "-printf",
                                 "%b\\t%p\\0", "-delete"])
            changes += [{"delete": path, "bytes": n} for n, path in files]
        if p.journal_max is not None and mount_of(_JOURNAL, mounts) in failing:
            usage = self._journal_usage(ctx)
            if usage is not None and usage > p.journal_max:
                changes.append({"journal_vacuum_to": p.journal_max,
                                "bytes": usage - p.journal_max, "estimate": True})
                commands.append(["journalctl", f"--vacuum-size={p.journal_max}"])
        for name in p.package_caches:
            cache, command = _CACHES[name]
            if mount_of(cache, mounts) not in failing:
                continue
            used = self._du(ctx, cache)
            if used:
                changes.append({"package_cache": name, "path": cache, "bytes": used,
                                "estimate": True})
                commands.append(command)
        if not changes:
            return None
        total = sum(int(c["bytes"]) for c in changes)
        count = sum(1 for c in changes if "delete" in c)
        return Plan(f"free {format_size(total)} on {', '.join(failing)} ({count} old file"
                    f"{'s' if count != 1 else ''}"
                    + (", journal" if any("journal_vacuum_to" in c for c in changes) else "")
                    + (", package caches" if any("package_cache" in c for c in changes)
                       else "") + ")",
                    changes, commands, f"{', '.join(failing)} below the limits",
                    {"mounts": failing, "bytes": total})

    def _journal_usage(self, ctx: FixContext[CleanupParams]) -> int | None:
        res = ctx.run(["journalctl", "--disk-usage"], sudo=ctx.params.sudo)
        m = re.search(r"take up ([\d.]+)\s*([KMGT]?)", res.stdout)
        if not res.ok or m is None:
            return None
        power = " KMGT".index(m.group(2) or " ")
        return int(float(m.group(1)) * 1024 ** power)

    def _du(self, ctx: FixContext[CleanupParams], path: str) -> int:
        res = ctx.run(["du", "-sxB1", "--", path], sudo=ctx.params.sudo)
        head = res.stdout.split()
        return int(head[0]) if res.ok and head and head[0].isdigit() else 0

    def apply(self, ctx: FixContext[CleanupParams], plan: Plan) -> str:
        if plan.data.get("windows"):
            from upkeeper_disk.wincleanup import apply_windows

            return apply_windows(ctx, plan)
        freed = 0
        for command in plan.commands:
            if command[0] == "find":
                if command[-1] != "-delete" or command[1] != "-P":
                    raise FixRefused(f"unexpected command in the plan: {command[:4]}")
                if not self._base_ok(ctx, command[2]):  # again: it may be a link now
                    raise FixRefused(f"{command[2]} is gone or a symlink since the plan")
                res = ctx.run(command, sudo=ctx.params.sudo)
                freed += sum(n for n, _p in parse_find(res.stdout))
                res.check_ok("deleting old files")
            else:
                ctx.run(command, sudo=ctx.params.sudo).check_ok(" ".join(command))
        return f"deleted files of {format_size(freed)} (planned {format_size(plan.data['bytes'])})"

    def judge(self, plan: Plan, before: Result,
              after: list[Result]) -> tuple[bool, str] | None:
        rows: dict[str, Any] = {}
        for r in after:
            if r.check == before.check and isinstance(r.details, dict):
                rows.update({str(m.get("mount")): m for m in r.details.get("mounts") or []
                             if isinstance(m, dict)})
        still = [f"{m} {rows[m].get('status')}" if m in rows else f"{m} not reported"
                 for m in plan.data.get("mounts", [])
                 if m not in rows or rows[m].get("status") != "OK"]
        if still:
            return False, f"still failing: {', '.join(still)}"
        return True, f"{', '.join(plan.data.get('mounts', []))} OK now"
