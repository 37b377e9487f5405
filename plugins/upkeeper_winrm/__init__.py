"""upkeeper built-in plugin: the ``winrm`` transport for Windows hosts (pywinrm)."""

from __future__ import annotations

from upkeeper import Transport, hookimpl

from .transport import WinRMTransport

__all__ = ["WinRMTransport"]


@hookimpl
def upkeeper_register_transports() -> list[type[Transport]]:
    return [WinRMTransport]
