"""``system.service``: is a service running (systemd or the Windows service manager), and
the ``system.service.restart`` fix that starts a stopped one and nothing else."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from upkeeper import (
    Check,
    CheckContext,
    Fix,
    FixContext,
    FixRefused,
    Params,
    Plan,
    Result,
    Status,
    signature,
)
from upkeeper.powershell import ps_quote, run_powershell_json

#: systemd unit names and Windows service names: no spaces, quotes or leading dash.
_NAME_RE = re.compile(r"^[A-Za-z0-9_.@:\\-]{1,200}$")
_SHOW = ["systemctl", "show", "--property=LoadState,ActiveState,SubState,UnitFileState",
         "--"]
#: systemd states that mean "stopped, and not on its way up".
STOPPED = ("inactive", "failed")


class ServiceParams(Params):
    service: str = Field(description="systemd unit (nginx, nginx.service) or Windows "
                                     "service name")

    @field_validator("service")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v) or v.startswith("-"):
            raise ValueError("a service name is letters, digits and . _ @ : - (no spaces,"
                             " not starting with -)")
        return v


def parse_systemctl_show(text: str) -> dict[str, str]:
    """``Key=value`` lines of ``systemctl show`` (unknown lines ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key:
            out[key] = value
    return out


def judge_systemd(service: str, props: dict[str, str]) -> Result:
    load, active = props.get("LoadState", ""), props.get("ActiveState", "")
    sub = props.get("SubState", "")
    details = {"service": service, "manager": "systemd", "load_state": load,
               "active_state": active, "sub_state": sub,
               "unit_file_state": props.get("UnitFileState", "")}
    if load in ("not-found", "") or not active:
        return Result(Status.UNKNOWN, f"{service}: no such unit ({load or 'no state'})",
                      details=details)
    if active == "active":
        return Result(Status.OK, f"{service} is active ({sub})", details=details)
    if active in STOPPED:
        return Result(Status.CRIT, f"{service} is {active} ({sub})", details=details)
    return Result(Status.WARN, f"{service} is {active} ({sub})", details=details)


def judge_windows(service: str, row: Any) -> Result:
    if not isinstance(row, dict):
        return Result(Status.UNKNOWN, f"{service}: no such service")
    state = str(row.get("Status", ""))
    details = {"service": service, "manager": "windows", "state": state,
               "start_type": str(row.get("StartType", ""))}
    if state == "Running":
        return Result(Status.OK, f"{service} is running", details=details)
    if state == "Stopped":
        return Result(Status.CRIT, f"{service} is stopped", details=details)
    return Result(Status.WARN, f"{service} is {state or 'in an unknown state'}",
                  details=details)


_PS_STATE = ("Get-Service -Name {name} -ErrorAction SilentlyContinue | "
             "Select-Object @{{n='Status';e={{[string]$_.Status}}}},"
             "@{{n='StartType';e={{[string]$_.StartType}}}}")


def _state(ctx: CheckContext[ServiceParams] | FixContext[ServiceParams]) -> Result:
    name = ctx.params.service
    if ctx.is_windows:
        rows = run_powershell_json(ctx, _PS_STATE.format(name=ps_quote(name)))
        return judge_windows(name, rows[0] if rows else None)
    res = ctx.run([*_SHOW, name]).check_ok(f"systemctl show {name}")
    return judge_systemd(name, parse_systemctl_show(res.stdout))


class ServiceCheck(Check[ServiceParams]):
    """Whether a service runs: CRIT when stopped or failed."""

    name = "system.service"
    description = "A systemd unit or Windows service is running; CRIT when stopped"
    Params = ServiceParams
    platforms = ("linux", "windows")
    timeout = 60.0

    def run(self, ctx: CheckContext[ServiceParams]) -> Result:
        return _state(ctx)


class RestartParams(Params):
    sudo: bool = Field(False, description="run systemctl through sudo")


class ServiceRestart(Fix[RestartParams]):
    """Start a stopped service (systemctl restart / Start-Service), nothing else."""

    name = "system.service.restart"
    description = "Restart a stopped or failed service"
    Params = RestartParams
    handles = (signature("system.service", "CRIT", active_state="^(inactive|failed)$"),
               signature("system.service", "CRIT", state="^Stopped$"))
    identity = ("service",)
    platforms = ("linux", "windows")
    default_tier = "auto"
    needs_window = True
    settle = 120.0
    timeout = 120.0

    def plan(self, ctx: FixContext[RestartParams]) -> Plan | None:
        details = ctx.result.details if isinstance(ctx.result.details, dict) else {}
        service = str(details.get("service", ""))
        try:
            ServiceParams(service=service)
        except ValueError:
            raise FixRefused(f"the failing result names no valid service: {service!r}"
                             ) from None
        now: Result = _state(_Probe(ctx, service))  # type: ignore[arg-type]
        if now.status is Status.OK:
            return None  # came back by itself
        current = now.details if isinstance(now.details, dict) else {}
        if current.get("manager") == "windows":
            if current.get("state") != "Stopped":
                raise FixRefused(f"{service} is {current.get('state')}: only a stopped"
                                 " service is started")
            return Plan(f"start {service} (stopped)", [current],
                        [["Start-Service", "-Name", service]], f"{service} running",
                        {"service": service, "manager": "windows"})
        if current.get("active_state") not in STOPPED:
            raise FixRefused(f"{service} is {current.get('active_state')}: only a stopped"
                             " or failed unit is restarted")
        return Plan(f"restart {service} ({current.get('active_state')}, "
                    f"{current.get('sub_state')})", [current],
                    [["systemctl", "restart", "--", service]], f"{service} active",
                    {"service": service, "manager": "systemd"})

    def apply(self, ctx: FixContext[RestartParams], plan: Plan) -> str:
        service = str(plan.data["service"])
        if plan.data.get("manager") == "windows":
            ctx.run_powershell(f"Start-Service -Name {ps_quote(service)} -ErrorAction Stop"
                               ).check_ok(f"Start-Service {service}")
        else:
            ctx.run(plan.commands[0], sudo=ctx.params.sudo).check_ok(
                f"systemctl restart {service}")
        return f"started {service}"


class _Probe:
    """A FixContext seen as the check's context for one service (read-only)."""

    def __init__(self, ctx: FixContext[RestartParams], service: str) -> None:
        self._ctx = ctx
        self.params = ServiceParams(service=service)
        self.is_windows = ctx.is_windows

    def run(self, *args: Any, **kw: Any) -> Any:
        return self._ctx.run(*args, **kw)

    def run_powershell(self, *args: Any, **kw: Any) -> Any:
        return self._ctx.run_powershell(*args, **kw)
