"""How scripts and commands are put on the wire: PowerShell wrapping and cmd.exe quoting.

A PowerShell script is wrapped so that output is UTF-8, a terminating error exits 1 with
a plain-text message, and the exit code is the script's own. Short scripts travel as
``-EncodedCommand``; longer ones would break cmd.exe's 8191-character command-line
limit, so a small fixed bootstrap goes on the command line and the script follows on
stdin (base64 of UTF-8, so no code page can mangle it).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from upkeeper import check_env
from upkeeper.powershell import ps_quote

#: cmd.exe refuses command lines longer than this (pywinrm issues 87 and 184).
CMD_LINE_LIMIT = 8191
#: Scripts whose whole command line stays under this go as -EncodedCommand.
ENCODED_COMMAND_MAX = 8000
POWERSHELL = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass"

# The script text is evaluated from a variable so that a parse error is reported by the
# catch block like any other error instead of breaking the wrapper itself.
_WRAPPER = """\
$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'
try {{ [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false }} catch {{ }}
$OutputEncoding = New-Object System.Text.UTF8Encoding $false
$global:LASTEXITCODE = 0
try {{
    $__upk_src = {source}
    & ([ScriptBlock]::Create($__upk_src))
}} catch {{
    [Console]::Error.WriteLine(($_ | Out-String).Trim())
    exit 1
}}
if ($global:LASTEXITCODE -is [int] -and $global:LASTEXITCODE -ne 0) {{ exit $global:LASTEXITCODE }}
exit 0
"""

# Reads the script sent on stdin; `$input` is how powershell.exe exposes a redirected stdin.
_STDIN_SOURCE = (
    "[System.Text.Encoding]::UTF8.GetString("
    "[System.Convert]::FromBase64String((@($input) -join '').Trim()))"
)


@dataclass(frozen=True)
class Invocation:
    """A command line for the WinRM Command call plus optional bytes for stdin."""

    command: str
    stdin: bytes | None = None

    @property
    def uses_stdin(self) -> bool:
        return self.stdin is not None


def wrap_powershell(script: str, source: str | None = None) -> str:
    """The full PowerShell text that runs ``script`` (or the text ``source`` evaluates to)."""
    return _WRAPPER.format(source=source if source is not None else ps_quote(script))


def encode_command(script: str) -> str:
    """``-EncodedCommand`` payload: base64 of the UTF-16LE script."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def decode_command(payload: str) -> str:
    """Inverse of :func:`encode_command` (used by tests and the fake endpoint)."""
    return base64.b64decode(payload).decode("utf-16-le")


def powershell_invocation(script: str, force_stdin: bool = False) -> Invocation:
    """How to send ``script``: inline when short, else a bootstrap plus stdin.

    :param force_stdin: always use stdin, e.g. when the script holds secrets that must
        not appear on a command line (visible in the host's process list).
    """
    if not force_stdin:
        line = f"{POWERSHELL} -EncodedCommand {encode_command(wrap_powershell(script))}"
        if len(line) <= ENCODED_COMMAND_MAX:
            return Invocation(line)
    bootstrap = wrap_powershell(script, source=_STDIN_SOURCE)
    line = f"{POWERSHELL} -EncodedCommand {encode_command(bootstrap)}"
    payload = base64.b64encode(script.encode("utf-8")) + b"\r\n"
    return Invocation(line, payload)


_CMD_META = re.compile(r'([()%!^"<>&|])')


def quote_windows_arg(arg: str) -> str:
    """Quote one argument the way the Microsoft C runtime (CommandLineToArgvW) parses it.

    Same result as :func:`subprocess.list2cmdline` for a single argument.
    """
    wrap = not arg or bool(re.search(r"[ \t]", arg))
    out: list[str] = ['"'] if wrap else []
    backslashes = 0
    for ch in arg:
        if ch == "\\":
            backslashes += 1
            continue
        if ch == '"':
            out.append("\\" * (backslashes * 2 + 1) + '"')
        else:
            out.append("\\" * backslashes + ch)
        backslashes = 0
    out.append("\\" * (backslashes * 2) + '"' if wrap else "\\" * backslashes)
    return "".join(out)


def cmd_join(args: Sequence[str]) -> str:
    """A cmd.exe command line running ``args`` literally.

    Each argument is quoted for the program's argument parser, then every cmd.exe
    metacharacter (quotes included) is escaped with ``^`` so cmd passes it through
    untouched: ``&``, ``|``, ``%VAR%`` and friends in a value cannot start anything.
    """
    line = " ".join(quote_windows_arg(str(a)) for a in args)
    return _CMD_META.sub(r"^\1", line)


def cmd_with_env_script(command: str, env: Mapping[str, str]) -> str:
    """PowerShell that runs a cmd.exe ``command`` with extra environment variables.

    Sent over stdin (see :func:`powershell_invocation` with ``force_stdin``), so the
    values never appear on any command line. Names are checked as on every transport.

    :raises ValueError: a bad name or value.
    """
    lines = [f"[Environment]::SetEnvironmentVariable({ps_quote(k)}, {ps_quote(v)}, 'Process')"
             for k, v in check_env(env).items()]
    lines += [
        "$psi = New-Object System.Diagnostics.ProcessStartInfo",
        "$psi.FileName = $env:ComSpec",
        f"$psi.Arguments = '/d /s /c \"' + {ps_quote(command)} + '\"'",
        "$psi.UseShellExecute = $false",
        "$psi.RedirectStandardOutput = $true",
        "$psi.RedirectStandardError = $true",
        "$p = [System.Diagnostics.Process]::Start($psi)",
        "$err = $p.StandardError.ReadToEndAsync()",
        "[Console]::Out.Write($p.StandardOutput.ReadToEnd())",
        "$p.WaitForExit()",
        "[Console]::Error.Write($err.Result)",
        "exit $p.ExitCode",
    ]
    return "\n".join(lines)
