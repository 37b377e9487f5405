"""``patching.status``: pending and security updates, reboot state and patch compliance."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import Field, model_validator

from upkeeper import Check, CheckContext, Params, Result, Status
from upkeeper.measures import grade, renamed_params
from upkeeper.powershell import PowerShellError, run_powershell_json
from upkeeper_patching import apt, dnf, windows, zypper
from upkeeper_patching.model import PatchState, split_sections
from upkeeper_patching.runs import CLEARED_STATE, last_patched, track_cleared

SUPPORTED = ("apt", "dnf", "yum", "zypper")


class StatusParams(Params):
    crit_security_days: float = Field(
        14, ge=0, description="CRIT when a security update has been pending at least this "
                              "many days (counted from the first run that saw it)")
    crit_days_since_patch: float | None = Field(
        45, gt=0, description="CRIT when updates are pending and the pending security "
                              "updates were last brought to zero (or the host last fully "
                              "upgraded) at least this many days ago (null disables)")
    warn_reboot_days: float = Field(
        3, ge=0, description="WARN when a reboot has been pending at least this many days")
    warn_on_pending: bool = Field(
        False, description="WARN when any update (not only security) is pending")
    sudo: bool = Field(False, description="gather as root (yum history, zypper locks)")

    _renamed = model_validator(mode="before")(renamed_params(
        {"security_crit_days": "crit_security_days",
         "max_days_since_patch": "crit_days_since_patch",
         "reboot_warn_days": "warn_reboot_days"}, since="1.1", owner="patching.status"))


def package_manager(ctx: CheckContext[Any]) -> str:
    """``windows`` or the host's package manager from facts (``pkg_mgr``), or ''."""
    if ctx.is_windows:
        return "windows"
    return str(ctx.host.facts.get("pkg_mgr") or ctx.host.vars.get("pkg_mgr") or "")


def gather_state(ctx: CheckContext[Any], sudo: bool = False) -> PatchState:
    """Everything about the host's patch level, in one round trip where possible."""
    pm = package_manager(ctx)
    if pm == "windows":
        try:
            rows = run_powershell_json(ctx, windows.STATUS_SCRIPT, depth=5)
        except PowerShellError as exc:
            return PatchState("windows-update", error=str(exc))
        return windows.state_from_json(rows)
    if pm not in SUPPORTED:
        what = f"package manager {pm!r}" if pm else "no known package manager"
        return PatchState(pm or "none", error=f"{what} is not supported by patching "
                                               f"(supported: {', '.join(SUPPORTED)}, Windows)")
    if pm == "apt":
        script = apt.STATUS_SCRIPT
    elif pm == "zypper":
        script = zypper.STATUS_SCRIPT
    else:
        script = dnf.status_script(pm)
    res = ctx.run(["sh", "-c", script], sudo=sudo)
    if res.timed_out:
        return PatchState(pm, error=f"gathering {pm} updates timed out")
    sections = split_sections(res.stdout)
    if not sections:
        err = (res.stderr or res.stdout).strip()[:200] or f"exit {res.exit_code}"
        return PatchState(pm, error=f"no output from the {pm} status script: {err}")
    if pm == "apt":
        return apt.state_from_sections(sections)
    if pm == "zypper":
        return zypper.state_from_sections(sections)
    return dnf.state_from_sections(pm, sections)


def _days(since: datetime, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds() / 86400)


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def pending_counts(state: PatchState) -> tuple[int, int]:
    """(total, security). On zypper security counts patches, total counts packages."""
    packages = [u for u in state.updates if u.kind != "patch"]
    total = len(packages) or len(state.updates)
    return total, len(state.security)


def judge(state: PatchState, p: StatusParams, ctx: CheckContext[Any]) -> Result:
    """Turn a gathered state into the status result, remembering first-seen times."""
    if state.error:
        return Result(Status.UNKNOWN, state.error,
                      details={"manager": state.manager, "notes": state.notes})
    now = ctx.now
    seen = ctx.history.get_state("first_seen", {}) or {}
    first_seen = {u.key: _parse_iso(seen.get(u.key)) or now for u in state.security}
    ctx.history.set_state("first_seen", {k: v.isoformat() for k, v in first_seen.items()})

    reboot_since = state.reboot_since
    if state.reboot_required:
        stored = _parse_iso(ctx.history.get_state("reboot_since"))
        reboot_since = reboot_since or stored or now
        if stored is None:
            ctx.history.set_state("reboot_since", reboot_since.isoformat())
    elif state.reboot_required is False:
        ctx.history.set_state("reboot_since", None)

    total, security = pending_counts(state)
    status = Status.OK
    parts = [f"{total} update{'s' if total != 1 else ''} pending ({security} security)"
             if total else "up to date"]
    problems: list[str] = []
    if security:
        status = Status.WARN
        oldest = min(first_seen.values())
        age = _days(oldest, now)
        if grade(age, crit=p.crit_security_days) is Status.CRIT:
            status = Status.CRIT
            problems.append(f"security updates pending {age:.0f} days "
                            f"(limit {p.crit_security_days:g})")
    elif total and p.warn_on_pending:
        status = Status.WARN
    cleared = track_cleared(ctx.history.get_state(CLEARED_STATE),
                            security == 0 if state.security_known else None, total == 0,
                            state.last_patch_run, now)
    ctx.history.set_state(CLEARED_STATE, cleared)
    patched = last_patched(state.last_patch_run, cleared)
    days_since: float | None = None
    if patched.when is not None:
        days_since = _days(patched.when, now)
        parts.append(f"last patched {days_since:.0f} days ago")
        if total and grade(days_since, crit=p.crit_days_since_patch) is Status.CRIT:
            status = Status.CRIT
            problems.append(f"not patched for {days_since:.0f} days "
                            f"(limit {p.crit_days_since_patch:g})")
    if state.reboot_required:
        reboot_days = _days(reboot_since or now, now)
        parts.append(f"reboot required for {reboot_days:.1f} days")
        if grade(reboot_days, p.warn_reboot_days) is Status.WARN:
            status = Status.worst([status, Status.WARN])
            problems.append(f"reboot pending over {p.warn_reboot_days:g} days")
    summary = "; ".join(parts)
    if problems:
        summary += " - " + "; ".join(problems)

    metrics: dict[str, float] = {"pending_total": total, "pending_security": security}
    if state.reboot_required is not None:
        metrics["reboot_required"] = 1 if state.reboot_required else 0
    if days_since is not None:
        metrics["days_since_patch"] = round(days_since, 2)
    updates = []
    for u in state.updates:
        item = u.to_dict()
        if u.security:
            item["first_seen"] = first_seen[u.key].isoformat()
        updates.append(item)
    details: dict[str, Any] = {
        "manager": state.manager,
        "updates": updates,
        "reboot": {"required": state.reboot_required, "reasons": state.reboot_reasons,
                   "since": reboot_since.isoformat() if state.reboot_required and reboot_since
                   else None},
        "last_patched": patched.when.isoformat() if patched.when else None,
        "last_patched_from": patched.source,
        "last_patch_run": ({"at": patched.run.when.isoformat(), "kind": patched.run.kind}
                           if patched.run else None),
        "security_cleared": patched.cleared.isoformat() if patched.cleared else None,
    }
    if state.notes:
        details["notes"] = state.notes
    details.update(state.extra)
    return Result(status, summary, metrics=metrics, details=details)


class PatchStatus(Check[StatusParams]):
    """Pending and security updates, reboot state and days since the last patch."""

    name = "patching.status"
    description = ("Pending/security updates, reboot required and days since patching "
                   "(apt, dnf, yum, zypper, Windows Update)")
    Params = StatusParams
    platforms = ("linux", "windows")
    timeout = 600.0

    def run(self, ctx: CheckContext[StatusParams]) -> Result:
        return judge(gather_state(ctx, ctx.params.sudo), ctx.params, ctx)
