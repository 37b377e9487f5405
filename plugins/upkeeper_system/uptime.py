"""``system.uptime``: how long since the last boot (patches need reboots)."""

from __future__ import annotations

from pydantic import Field

from upkeeper import Check, CheckContext, Params, Result, Status
from upkeeper.powershell import run_powershell_json


class UptimeParams(Params):
    max_days: float = Field(30, gt=0, description="WARN when up longer than this many days")
    crit_days: float | None = Field(None, gt=0, description="CRIT when up longer than this")


def parse_proc_uptime(text: str) -> float:
    """Seconds since boot from ``/proc/uptime``."""
    return float(text.split()[0])


def judge_uptime(seconds: float, p: UptimeParams) -> Result:
    days = seconds / 86400
    status = Status.OK
    if p.crit_days is not None and days > p.crit_days:
        status = Status.CRIT
    elif days > p.max_days:
        status = Status.WARN
    summary = f"up {days:.1f} days"
    if status is not Status.OK:
        summary += f" (over {p.crit_days if status is Status.CRIT else p.max_days:g}; reboot to "\
                   "apply kernel and library updates)"
    return Result(status, summary, metrics={"uptime_days": round(days, 3)})


class UptimeCheck(Check[UptimeParams]):
    """Days since boot; WARN past ``max_days``."""

    name = "system.uptime"
    description = "Days since the last boot; WARN when longer than max_days"
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
