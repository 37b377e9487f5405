"""``patching.apply``: install pending (security) updates, then reboot only as the policy says.

In check mode nothing is changed: apt simulates (``apt-get -s``), dnf/yum answer no
(``--assumeno``), zypper runs ``--dry-run`` and Windows only searches.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from upkeeper import Action, CheckContext, CommandResult, Params, Result, Status
from upkeeper.argv import check_operand
from upkeeper.powershell import PowerShellError, as_list, run_powershell_json
from upkeeper_patching import apt, dnf, windows, zypper
from upkeeper_patching.checks import SUPPORTED, gather_state, package_manager
from upkeeper_patching.model import PatchState, Update
from upkeeper_patching.reboot import reboot_and_wait, window_minutes_left

_KB_RE = re.compile(r"^(?:KB)?(\d{5,8})$", re.IGNORECASE)


class ApplyParams(Params):
    scope: Literal["security", "all"] = Field(
        "security", description="install only security updates, or everything pending")
    exclude: list[str] = Field(
        default_factory=list, description="package globs (apt, dnf, yum) or KB numbers "
                                          "(Windows) never to install")
    pre: list[str] = Field(
        default_factory=list, description="commands run as root before patching, through the "
                                          "shell as written (trusted, like system.command); "
                                          "the first failure aborts before anything is "
                                          "installed")
    post: list[str] = Field(
        default_factory=list, description="commands run as root after patching (and reboot), "
                                          "through the shell as written (trusted)")
    reboot: Literal["never", "if_required", "always"] = Field(
        "if_required", description="reboot policy after installing")
    reboot_timeout: float = Field(
        900, gt=0, description="seconds to wait for the host to come back after a reboot")
    reboot_min_window_minutes: float = Field(
        15, ge=0, description="do not start a reboot with fewer minutes left in the "
                              "maintenance window")
    refresh: bool = Field(
        True, description="refresh package metadata first (apt-get update, zypper refresh); "
                          "skipped in check mode")
    install_timeout: float = Field(3600, gt=0, description="seconds allowed for the install")

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, v: list[str]) -> list[str]:
        # dnf gets each as --exclude=GLOB: a value, but never one that reads as an option.
        return [check_operand(glob) for glob in v]


def _excluded(update: Update, patterns: list[str]) -> bool:
    names = [update.name, *update.advisory.split(",")]
    for pat in patterns:
        kb = _KB_RE.match(pat.strip())
        if kb and any(n.upper() == f"KB{kb.group(1)}" for n in names):
            return True
        if any(fnmatch.fnmatchcase(n, pat) for n in names if n):
            return True
    return False


def select_updates(state: PatchState, scope: str, exclude: list[str]) -> list[Update]:
    """The pending updates the action would install for ``scope`` minus ``exclude``."""
    chosen = []
    for u in state.updates:
        if scope == "security" and not u.security:
            continue
        if state.manager == "zypper" and scope == "security" and u.kind != "patch":
            continue
        if u.kind == "kept-back" and scope == "security":
            continue
        if not _excluded(u, exclude):
            chosen.append(u)
    return chosen


def _tail(res: CommandResult, lines: int = 5) -> str:
    text = (res.stderr.strip() or res.stdout.strip()).splitlines()
    return " | ".join(t.strip() for t in text[-lines:])[:400]


def installed_between(before: list[Update], after: PatchState) -> list[dict[str, str]]:
    """Updates pending before and gone (or at a newer candidate) after: what was installed."""
    still = {u.key: u for u in after.updates}
    out = []
    for u in before:
        if u.key in still and still[u.key].current == u.current:
            continue
        out.append({"name": u.name, "from": u.current, "to": u.available or "?"}
                   if u.kind != "patch" else {"name": u.name, "patch": u.title})
    return out


class PatchApply(Action[ApplyParams]):
    """Install pending updates (security or all) with a reboot policy."""

    name = "patching.apply"
    description = ("Install security or all updates (apt, dnf, yum, zypper, Windows Update) "
                   "with pre/post commands and a reboot policy")
    Params = ApplyParams
    platforms = ("linux", "windows")
    timeout = 7200.0
    #: How the action waits between reconnect attempts (tests inject a no-op).
    sleep: ClassVar[Callable[[float], None]] = staticmethod(time.sleep)
    _started: float = 0.0

    def run(self, ctx: CheckContext[ApplyParams]) -> Result:
        p = ctx.params
        self._started = time.monotonic()
        pm = package_manager(ctx)
        if pm != "windows" and pm not in SUPPORTED:
            return Result(Status.UNKNOWN, f"package manager {pm or 'unknown'!r} is not "
                                          "supported by patching.apply")
        if pm == "zypper" and p.exclude:
            return Result(Status.UNKNOWN, "exclude is not supported with zypper (lock the "
                                          "packages with `zypper addlock` instead)")
        details: dict[str, Any] = {"scope": p.scope, "reboot_policy": p.reboot}
        if p.refresh and not ctx.check_mode and pm != "windows":
            self._refresh(ctx, pm, details)
        before = gather_state(ctx, sudo=not ctx.check_mode)
        if before.error:
            return Result(Status.UNKNOWN, f"cannot list updates: {before.error}",
                          details=details)
        details["manager"] = before.manager
        chosen = select_updates(before, p.scope, p.exclude)
        if ctx.check_mode:
            return self._simulate(ctx, pm, chosen, before, details)
        if not chosen and p.reboot != "always" and not (
                p.reboot == "if_required" and before.reboot_required):
            return Result(Status.OK, f"nothing to install ({p.scope})", details=details,
                          metrics={"installed": 0})
        failed = self._commands(ctx, p.pre, "pre", details)
        if failed:
            return Result(Status.CRIT, f"pre command failed, nothing installed: {failed}",
                          details=details)
        status, after = Status.OK, before
        summary_parts: list[str] = []
        installed: list[dict[str, str]] = []
        if chosen:
            err, installed, after = self._install(ctx, pm, chosen, details)
            if err:
                status = Status.CRIT
                summary_parts.append(err)
        details["installed"] = installed
        summary_parts.insert(0, f"installed {len(installed)} update"
                                f"{'s' if len(installed) != 1 else ''}")
        rebooted = False
        if status is Status.OK:
            rebooted, reboot_status, note = self._maybe_reboot(ctx, after)
            status = Status.worst([status, reboot_status])
            if note:
                summary_parts.append(note)
            if rebooted:
                after = gather_state(ctx, sudo=True)
        details["rebooted"] = rebooted
        details["reboot_required"] = after.reboot_required
        details["pending_after"] = [u.to_dict() for u in after.updates]
        post_failed = self._commands(ctx, p.post, "post", details)
        if post_failed:
            status = Status.CRIT
            summary_parts.append(f"post command failed: {post_failed}")
        metrics: dict[str, float] = {"installed": len(installed),
                                     "rebooted": 1 if rebooted else 0,
                                     "pending_after": len(after.updates)}
        return Result(status, "; ".join(summary_parts), metrics=metrics, details=details,
                      changed=bool(installed) or rebooted)

    def _refresh(self, ctx: CheckContext[ApplyParams], pm: str,
                 details: dict[str, Any]) -> None:
        """Refresh metadata; a failure (one unreachable mirror) is noted, not fatal."""
        if pm == "apt":
            res = ctx.run([*apt.APT_ENV, "apt-get", "update", "-q"], sudo=True, timeout=600)
        elif pm == "zypper":
            res = ctx.run([*zypper.ZYPPER, "refresh"], sudo=True, timeout=600)
        else:
            return
        if not res.ok:
            details["refresh_failed"] = _tail(res, 3)

    def _commands(self, ctx: CheckContext[ApplyParams], commands: list[str], stage: str,
                  details: dict[str, Any]) -> str | None:
        """Run pre/post commands in order; the first failure's description, else None."""
        ran = details.setdefault(stage, [])
        for command in commands:
            if ctx.is_windows:
                res = ctx.run_powershell(command)
            else:
                res = ctx.run(["sh", "-c", command], sudo=True)
            ran.append({"command": command, "exit_code": res.exit_code, "output": _tail(res)})
            if not res.ok:
                return f"{command!r} exited {res.exit_code}: {_tail(res, 2)}"
        return None

    def _simulate(self, ctx: CheckContext[ApplyParams], pm: str, chosen: list[Update],
                  before: PatchState, details: dict[str, Any]) -> Result:
        p = ctx.params
        would = [u.to_dict() for u in chosen]
        if pm == "apt":
            packages = None if p.scope == "all" and not p.exclude else [u.name for u in chosen]
            if packages != []:
                try:
                    argv = apt.simulate_command(packages)
                except ValueError as exc:
                    return Result(Status.UNKNOWN, str(exc), details=details)
                res = ctx.run(argv, timeout=p.install_timeout)
                if not res.ok:
                    return Result(Status.UNKNOWN, f"apt-get -s failed: {_tail(res, 2)}",
                                  details=details)
                would = [u.to_dict() for u in apt.parse_apt_get_simulate(res.stdout)
                         if u.kind != "kept-back"]
        elif pm in ("dnf", "yum"):
            res = ctx.run(dnf.apply_command(pm, p.scope, p.exclude, check_mode=True),
                          timeout=p.install_timeout)
            details["simulation"] = _tail(res, 8)
        elif pm == "zypper":
            res = ctx.run(zypper.apply_command(p.scope, check_mode=True), sudo=True,
                          timeout=p.install_timeout)
            details["simulation"] = _tail(res, 8)
        else:
            try:
                rows = run_powershell_json(
                    ctx, windows.apply_script(p.scope, self._kbs(p.exclude), True,
                                              int(p.install_timeout)), depth=5)
            except PowerShellError as exc:
                return Result(Status.UNKNOWN, str(exc), details=details)
            data = next((r for r in rows if isinstance(r, dict)), {})
            if data.get("Error"):
                return Result(Status.UNKNOWN, windows.wu_error_reason(
                    str(data["Error"]), data.get("HResult"), None), details=details)
            would = [u.to_dict() for u in windows.parse_windows_updates(data.get("Selected"))]
        reboot = {"never": "no", "always": "yes"}.get(
            p.reboot, "yes" if before.reboot_required else "if the updates need it")
        details["would_install"] = would
        details["would_reboot"] = reboot
        details["would_run"] = {"pre": p.pre, "post": p.post}
        return Result(Status.OK, f"check mode: would install {len(would)} update"
                                 f"{'s' if len(would) != 1 else ''} ({p.scope}); "
                                 f"would reboot: {reboot}",
                      details=details, metrics={"would_install": len(would)})

    @staticmethod
    def _kbs(exclude: list[str]) -> list[str]:
        return [f"KB{m.group(1)}" for m in (_KB_RE.match(e.strip()) for e in exclude) if m]

    def _install(self, ctx: CheckContext[ApplyParams], pm: str, chosen: list[Update],
                 details: dict[str, Any]) -> tuple[str | None, list[dict[str, str]], PatchState]:
        """Install; (error or None, what was installed, state after)."""
        p = ctx.params
        if pm == "windows":
            return self._install_windows(ctx, details)
        if pm == "apt":
            packages = None if p.scope == "all" and not p.exclude else [u.name for u in chosen]
            try:
                argv = apt.apply_command(packages)
            except ValueError as exc:
                return str(exc), [], gather_state(ctx, sudo=True)
            res = ctx.run(argv, sudo=True, timeout=p.install_timeout)
        elif pm == "zypper":
            cmd = zypper.apply_command(p.scope, check_mode=False)
            res = ctx.run(cmd, sudo=True, timeout=p.install_timeout)
            # 103: zypper updated itself first and must run again for the rest.
            for _ in range(2):
                if res.exit_code != 103:
                    break
                res = ctx.run(cmd, sudo=True, timeout=p.install_timeout)
        else:
            res = ctx.run(dnf.apply_command(pm, p.scope, p.exclude, check_mode=False),
                          sudo=True, timeout=p.install_timeout)
        details["install_output"] = _tail(res, 10)
        ok = res.ok or (pm == "zypper" and res.exit_code in zypper.ZYPPER_INFO_CODES
                        and not res.timed_out)
        after = gather_state(ctx, sudo=True)
        installed = installed_between(chosen, after) if not after.error else []
        err = None if ok else (f"install {'timed out' if res.timed_out else 'failed'} "
                               f"(exit {res.exit_code}): {_tail(res, 2)}")
        return err, installed, after

    def _install_windows(self, ctx: CheckContext[ApplyParams], details: dict[str, Any]
                         ) -> tuple[str | None, list[dict[str, str]], PatchState]:
        p = ctx.params
        script = windows.apply_script(p.scope, self._kbs(p.exclude), False,
                                      int(min(p.install_timeout, ctx.remaining())))
        try:
            rows = run_powershell_json(ctx, script, timeout=p.install_timeout + 60, depth=5)
        except PowerShellError as exc:
            return str(exc), [], gather_state(ctx)
        data = next((r for r in rows if isinstance(r, dict)), {})
        installed = []
        failures = []
        for item in as_list(data.get("Installed")):
            if not isinstance(item, dict):
                continue
            upd = windows.parse_windows_update(item)
            code = int(item.get("ResultCode") or 0)
            if code in (2, 3):
                installed.append({"name": upd.name, "title": upd.title})
            else:
                failures.append(f"{upd.name}: {windows.RESULT_CODES.get(code, code)}")
        after = gather_state(ctx)
        err = str(data["Error"]) if data.get("Error") else None
        if failures:
            err = "; ".join([*([err] if err else []), *failures])
        return err, installed, after

    def _maybe_reboot(self, ctx: CheckContext[ApplyParams], after: PatchState
                      ) -> tuple[bool, Status, str]:
        """(rebooted, status contribution, note) following the reboot policy."""
        p = ctx.params
        wanted = p.reboot == "always" or (p.reboot == "if_required" and after.reboot_required)
        if not wanted:
            note = "reboot required (policy: never)" if after.reboot_required else ""
            return False, Status.OK, note
        # ctx.now is when the action started; the install took a while since.
        now = ctx.now + timedelta(seconds=time.monotonic() - self._started)
        left = window_minutes_left(ctx.host.vars, now)
        if left is not None and left < p.reboot_min_window_minutes:
            return False, Status.WARN, (f"reboot deferred: maintenance window ends in "
                                        f"{left:.0f} min")
        outcome = reboot_and_wait(ctx, p.reboot_timeout, sleep=type(self).sleep)
        if not outcome.rebooted:
            return False, Status.CRIT, f"reboot failed: {outcome.message}"
        return True, Status.OK, f"rebooted ({outcome.message})"
