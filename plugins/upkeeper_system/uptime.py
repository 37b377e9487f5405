"""``system.uptime``: how long since the last boot (patches need reboots)."""

from __future__ import annotations

from pydantic import Field, model_validator

from upkeeper import Check, CheckContext, Params, Result, Status
from upkeeper.measures import grade, renamed_params
from upkeeper.powershell import run_powershell_json


class UptimeParams(Params):
    warn_days: float = Field(30, gt=0, description="WARN when up at least this many days")
    crit_days: float | None = Field(None, gt=0, description="CRIT when up at least this long")

    _renamed = model_validator(mode="before")(
        renamed_params({"max_days": "warn_days"}, since="1.1", owner="system.uptime"))


def parse_proc_uptime(text: str) -> float:
    """Seconds since boot from ``/proc/uptime``."""
    return float(text.split()[0])


def judge_uptime(seconds: float, p: UptimeParams) -> Result:
    days = seconds / 86400
    status = grade(days, p.warn_days, p.crit_days)
    summary = f"up {days:.1f} days"
    if status is not Status.OK:
        limit = p.crit_days if status is Status.CRIT else p.warn_days
        summary += f" (limit {limit:g}; reboot to apply kernel and library updates)"
    return Result(status, summary, metrics={"uptime_days": round(days, 3)})


class UptimeCheck(Check[UptimeParams]):
    """Days since boot; WARN at ``warn_days``."""

    name = "system.uptime"
    description = "Days since the last boot; WARN/CRIT at warn_days/crit_days"
    Params = UptimeParams
    platforms = ("linux", "windows")

    def run(self, ctx: CheckContext[UptimeParams]) -> Result:
        if ctx.is_windows:
            # Seconds are computed remotely: PowerShell 5.1 serialises DateTime oddly.
            rows = run_powershell_json(
                ctx, "[int64]((Get-Date) - (Get-CimInstance Win32_OperatingSystem)"
                     ".LastBootUpTime).TotalSeconds")
            if not rows or not isinstance(rows[0], (int, float)):
                return Result(Status.UNKNOWN, f"unexpected uptime from PowerShell: {rows!r}")
            seconds = float(rows[0])
        else:
            res = ctx.run(["cat", "/proc/uptime"]).check_ok("reading /proc/uptime")
            try:
                seconds = parse_proc_uptime(res.stdout)
            except (ValueError, IndexError):
                return Result(Status.UNKNOWN, f"unexpected /proc/uptime: {res.stdout[:80]!r}")
        return judge_uptime(seconds, ctx.params)
