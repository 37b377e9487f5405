"""Rebooting a host on purpose and waiting for it to come back with a new boot.

The reboot command is detached (it fires a few seconds later) so the transport gets a
clean answer before the connection drops; the host is then polled with backoff until
its boot identity differs from the one recorded before the reboot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from upkeeper import CheckContext, TransportError, window_state
from upkeeper.powershell import PowerShellError, run_powershell_json

LINUX_REBOOT = ("nohup sh -c 'sleep 3; systemctl reboot || /sbin/shutdown -r now || reboot'"
                " >/dev/null 2>&1 &")
WINDOWS_REBOOT = "shutdown.exe /r /t 5 /c 'upkeeper patching.apply' /d p:2:17"
_WINDOWS_BOOT = ("(Get-CimInstance Win32_OperatingSystem).LastBootUpTime"
                 ".ToUniversalTime().ToString('o')")


def boot_id(ctx: CheckContext[Any]) -> str | None:
    """Something that changes on every boot: Linux ``boot_id``, Windows LastBootUpTime."""
    if ctx.is_windows:
        try:
            rows = run_powershell_json(ctx, _WINDOWS_BOOT, timeout=60)
        except PowerShellError:
            return None
        return str(rows[0]) if rows else None
    res = ctx.run(["cat", "/proc/sys/kernel/random/boot_id"], timeout=30)
    return res.stdout.strip() if res.ok and res.stdout.strip() else None


@dataclass
class RebootOutcome:
    rebooted: bool
    seconds: float
    message: str


def reboot_and_wait(ctx: CheckContext[Any], timeout: float,
                    sleep: Callable[[float], None] = time.sleep) -> RebootOutcome:
    """Reboot the host, then reconnect with backoff until a new boot answers.

    :param timeout: seconds to wait for the host to come back (capped by the check's
        own remaining time).
    """
    before = boot_id(ctx)
    if before is None:
        return RebootOutcome(False, 0.0, "cannot read the boot id; not rebooting blind")
    started = time.monotonic()
    try:
        if ctx.is_windows:
            res = ctx.run_powershell(WINDOWS_REBOOT, timeout=60)
        else:
            res = ctx.run(LINUX_REBOOT, sudo=True, timeout=60)
    except TransportError:
        res = None  # the connection dropping as the host goes down is expected
    if res is not None and not res.ok:
        return RebootOutcome(False, 0.0, f"reboot command failed (exit {res.exit_code}): "
                                         f"{(res.stderr or res.stdout).strip()[:200]}")
    deadline = started + min(timeout, ctx.remaining())
    delay = 5.0
    sleep(delay)
    while time.monotonic() < deadline:
        ctx.transport.close()
        try:
            ctx.transport.open()
            now_id = boot_id(ctx)
        except TransportError:
            now_id = None
        if now_id is not None and now_id != before:
            elapsed = time.monotonic() - started
            return RebootOutcome(True, elapsed, f"back after {elapsed:.0f}s with a new boot")
        delay = min(delay * 2, 60.0)
        sleep(min(delay, max(0.0, deadline - time.monotonic())))
    return RebootOutcome(False, time.monotonic() - started,
                         f"host did not come back with a new boot within {timeout:g}s")


def window_minutes_left(host_vars: Mapping[str, Any], now: datetime) -> float | None:
    """Minutes left in the current maintenance window; None without windows, or when
    outside every window (the runner only starts the action there under ``--force``,
    which overrides windows); 0 when the windows cannot be read."""
    if not host_vars.get("maintenance_windows"):
        return None
    try:
        state = window_state(host_vars, now)
    except ValueError:
        return 0.0  # unreadable windows: never reboot on a guess
    if not state.inside or state.current_end is None:
        return None
    left: timedelta = state.current_end - now
    return left.total_seconds() / 60
