"""Waiting for a condition with a deadline, so tests never depend on the machine's speed
(instead of sleeping a fixed time and asserting a time window)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout: float = 60,
             interval: float = 0.02) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    :raises AssertionError: naming ``what`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def processes_mentioning(token: str) -> list[int]:
    """PIDs of live processes whose command line contains ``token`` (a unique temp path).

    Zombies have an empty command line, so a killed process no longer counts.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.append(int(entry.name))
    return found
