"""upkeeper built-in plugin: the ``winrm`` transport for Windows hosts (pywinrm).

pywinrm and requests are imported only when a host uses WinRM.
"""

from __future__ import annotations

from typing import Any

from upkeeper import Transport, hookimpl, lazy_transport

__all__ = ["WinRMTransport"]

_Lazy = lazy_transport("winrm", "upkeeper_winrm.transport:WinRMTransport", ("windows",))


def __getattr__(name: str) -> Any:
    if name == "WinRMTransport":
        from upkeeper_winrm.transport import WinRMTransport

        return WinRMTransport
    raise AttributeError(name)


@hookimpl
def upkeeper_register_transports() -> list[type[Transport]]:
    return [_Lazy]
