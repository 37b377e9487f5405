"""PowerShell helpers for checks on Windows hosts: quoting and JSON results.

Windows PowerShell 5.1's ``ConvertTo-Json`` returns a bare object where a list has one
element, ``"\\/Date(1700000000000)\\/"`` strings for dates and numbers for enums; these
helpers smooth that so checks see plain lists, datetimes and numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from upkeeper.models import CommandError, CommandResult

__all__ = [
    "PowerShellError",
    "as_list",
    "enum_name",
    "json_script",
    "normalize",
    "parse_ps_date",
    "parse_ps_json",
    "ps_quote",
    "run_powershell_json",
]

_DATE_RE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class _RunsPowerShell(Protocol):
    def run_powershell(self, script: str, timeout: float | None = None) -> CommandResult: ...


class PowerShellError(CommandError):
    """A PowerShell script failed or printed something that is not JSON."""


def ps_quote(value: object) -> str:
    """Quote ``value`` as a PowerShell single-quoted string literal (no expansion)."""
    text = str(value)
    # PowerShell also treats typographic single quotes as quote characters.
    for q in ("'", "\u2018", "\u2019", "\u201a", "\u201b"):
        text = text.replace(q, q + q)
    return f"'{text}'"


def parse_ps_date(value: str) -> datetime | None:
    """``/Date(ms)/`` (PowerShell 5.1) or ISO 8601 (PowerShell 7) -> aware datetime."""
    m = _DATE_RE.match(value.strip())
    if m:
        # Integer arithmetic: a float division loses milliseconds near DateTime.MaxValue.
        # The optional +hhmm suffix only says which zone the writer was in; ms are UTC.
        try:
            return _EPOCH + timedelta(milliseconds=int(m.group(1)))
        except OverflowError:
            return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def as_list(value: Any) -> list[Any]:
    """A JSON value that should be a list: ``None`` -> [], a lone object -> [object]."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    # PowerShell 5.1 wraps some arrays as {"value": [...], "Count": n}.
    if isinstance(value, dict) and set(value) == {"value", "Count"}:
        return as_list(value["value"])
    return [value]


def normalize(value: Any) -> Any:
    """Recursively turn ``/Date(ms)/`` strings into datetimes."""
    if isinstance(value, str):
        if value.startswith("/Date("):
            return parse_ps_date(value) or value
        return value
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return value


def parse_ps_json(text: str) -> Any:
    """Parse ``ConvertTo-Json`` output (BOM, blank output and stray lines tolerated).

    Warning or progress lines before the document and text after it are skipped.
    :raises json.JSONDecodeError: no JSON document was found.
    """
    body = text.lstrip("\ufeff").strip()
    if not body:
        return None
    try:
        return normalize(json.loads(body))
    except json.JSONDecodeError as first_error:
        decoder = json.JSONDecoder()
        # Try every line that could start the document, first to last.
        for m in re.finditer(r"^[ \t]*[\[{]", body, re.M):
            start = m.end() - 1
            try:
                value, _ = decoder.raw_decode(body, start)
            except json.JSONDecodeError:
                continue
            return normalize(value)
        raise first_error


def enum_name(value: Any, names: Mapping[int, str]) -> str | None:
    """An enum as its name whether PowerShell wrote a number (5.1) or a name (7).

    ``enum_name(4, SERVICE_STATUS) == enum_name("Running", SERVICE_STATUS) == "Running"``;
    unknown numbers come back as their text, ``None`` stays ``None``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return names.get(value, str(value))
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return names.get(int(text), text)
    return text


#: System.ServiceProcess.ServiceControllerStatus
SERVICE_STATUS = {1: "Stopped", 2: "StartPending", 3: "StopPending", 4: "Running",
                  5: "ContinuePending", 6: "PausePending", 7: "Paused"}
#: System.ServiceProcess.ServiceStartMode
SERVICE_START_TYPE = {0: "Boot", 1: "System", 2: "Automatic", 3: "Manual", 4: "Disabled"}


def json_script(script: str, depth: int = 4) -> str:
    """Wrap ``script`` so its output objects are emitted as one compressed JSON document."""
    return (
        "$ErrorActionPreference = 'Stop'\n"
        "$ProgressPreference = 'SilentlyContinue'\n"
        "[Console]::OutputEncoding = [System.Text.Encoding]::UTF8\n"
        f"$__out = @(& {{\n{script}\n}})\n"
        f"ConvertTo-Json -InputObject $__out -Depth {int(depth)} -Compress\n"
    )


def run_powershell_json(runner: _RunsPowerShell, script: str, timeout: float | None = None,
                        depth: int = 4) -> Any:
    """Run ``script`` and return its output objects as a list of plain JSON values.

    :param runner: a transport or a :class:`~upkeeper.CheckContext`.
    :raises PowerShellError: the script failed or its output is not JSON.
    """
    res = runner.run_powershell(json_script(script, depth), timeout=timeout)
    if not res.ok:
        raise PowerShellError(res, "PowerShell script")
    try:
        return as_list(parse_ps_json(res.stdout))
    except json.JSONDecodeError as exc:
        bad = CommandResult(res.command, 1, res.stdout, f"output is not JSON: {exc}")
        raise PowerShellError(bad, "PowerShell script") from exc

