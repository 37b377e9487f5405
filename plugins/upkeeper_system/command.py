"""``system.command``: run a command or script and judge it like a monitoring plugin."""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from pydantic import Field, field_validator

from upkeeper import Check, CheckContext, CommandResult, Params, Result, Status
from upkeeper.measures import grade
from upkeeper_system.perfdata import parse_perfdata, split_plugin_output
from upkeeper_system.saferegex import RegexError, search, validate_pattern

_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_MAX_DETAIL = 4000


class CommandParams(Params):
    command: str = Field(
        description="Command line (POSIX sh on Linux, PowerShell on Windows), run as written "
                    "by design: a trusted value; quote anything templated into it")
    shell: Literal["auto", "sh", "powershell"] = Field(
        "auto", description="auto: PowerShell on Windows hosts, sh elsewhere")
    sudo: bool = Field(False, description="Run through sudo (become)")
    ignore_exit_code: bool = Field(
        False, description="Judge only by regexes/thresholds, not by the exit code")
    ok_regex: str | None = Field(None, description="CRIT unless the output matches")
    warn_regex: str | None = Field(None, description="WARN when the output matches")
    crit_regex: str | None = Field(None, description="CRIT when the output matches")
    value_regex: str | None = Field(
        None, description="Regex whose first group (or match) is the number compared "
                          "with warn/crit; default: the first number in the output")
    warn: float | None = Field(None, description="WARN when the number is at or above this")
    crit: float | None = Field(None, description="CRIT when the number is at or above this")
    below: bool = Field(
        False, description="Thresholds are lower limits (alert at or below them)")
    metric: str = Field("value", description="Metric name for the extracted number")
    timeout: float | None = Field(None, gt=0, description="Seconds for the command")

    @field_validator("ok_regex", "warn_regex", "crit_regex", "value_regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        return None if v is None else validate_pattern(v)


def _threshold_status(value: float, p: CommandParams) -> Status:
    return grade(value, p.warn, p.crit, higher_is_worse=not p.below)


def judge(res: CommandResult, p: CommandParams, time_limit: float = 10.0) -> Result:
    """Status, summary and metrics for a finished command (pure: unit-tested).

    User regexes are matched within ``time_limit`` seconds in all (see ``saferegex``).
    """
    if res.timed_out:
        return Result(Status.UNKNOWN, "command timed out", details=_details(res))
    try:
        return _judge(res, p, time.monotonic() + time_limit)
    except RegexError as exc:
        return Result(Status.UNKNOWN, f"{exc}; simplify the pattern", details=_details(res))


def _judge(res: CommandResult, p: CommandParams, deadline: float) -> Result:
    def found(pattern: str) -> Any:
        return search(pattern, text, max(0.0, deadline - time.monotonic()))

    output = res.stdout if res.stdout.strip() else res.stderr
    summary, perf = split_plugin_output(output)
    metrics = parse_perfdata(perf)
    statuses: list[Status] = []
    if not p.ignore_exit_code:
        statuses.append(Status.from_exit_code(res.exit_code))
    text = res.stdout + res.stderr
    if p.crit_regex and found(p.crit_regex):
        statuses.append(Status.CRIT)
    if p.warn_regex and found(p.warn_regex):
        statuses.append(Status.WARN)
    if p.ok_regex and not found(p.ok_regex):
        statuses.append(Status.CRIT)
        summary = f"output does not match {p.ok_regex!r}: {summary}"
    if p.warn is not None or p.crit is not None:
        if p.value_regex:
            m = found(p.value_regex)
            raw = (m.groups[0] if m.groups else m.text) if m else None
        else:
            n = _NUMBER_RE.search(res.stdout)
            raw = n.group(0) if n else None
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            value = None
        if value is None:
            statuses.append(Status.UNKNOWN)
            summary = f"no number found in output: {summary}"
        else:
            metrics[p.metric] = value
            statuses.append(_threshold_status(value, p))
    status = Status.worst(statuses) if statuses else Status.OK
    if not summary:
        summary = f"exit code {res.exit_code}"
    elif res.exit_code not in (0, 1, 2) and not p.ignore_exit_code:
        summary = f"exit code {res.exit_code}: {summary}"
    return Result(status, summary[:300], metrics=metrics, details=_details(res))


def _details(res: CommandResult) -> dict[str, object]:
    return {
        "exit_code": res.exit_code,
        "stdout": res.stdout[-_MAX_DETAIL:],
        "stderr": res.stderr[-_MAX_DETAIL:],
        "truncated": res.truncated or len(res.stdout) > _MAX_DETAIL,
    }


class CommandCheck(Check[CommandParams]):
    """Run a command or script; status by exit code (0 OK, 1 WARN, 2 CRIT, else UNKNOWN),
    output regexes or numeric thresholds. Nagios plugins work as they are."""

    name = "system.command"
    description = "Run a command/Nagios plugin; status from exit code, regexes or thresholds"
    Params = CommandParams
    platforms = ("*",)

    def run(self, ctx: CheckContext[CommandParams]) -> Result:
        p = ctx.params
        use_ps = p.shell == "powershell" or (p.shell == "auto" and ctx.is_windows)
        if use_ps:
            res = ctx.run_powershell(p.command, timeout=p.timeout)
        else:
            res = ctx.run(p.command, timeout=p.timeout, sudo=p.sudo)
        return judge(res, p, time_limit=ctx.remaining())
