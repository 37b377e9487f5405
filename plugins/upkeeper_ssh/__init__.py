"""upkeeper built-in plugin: the SSH transport (paramiko), ``ansible_connection: ssh``.

paramiko is imported only when a host uses SSH.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from upkeeper import Transport, hookimpl, lazy_transport

if TYPE_CHECKING:
    import click

    from upkeeper_ssh.transport import SSHTransport

__all__ = ["SSHTransport"]

_Lazy = lazy_transport("ssh", "upkeeper_ssh.transport:SSHTransport",
                       ("linux", "darwin", "freebsd", "openbsd", "netbsd", "sunos", "aix"))


def __getattr__(name: str) -> Any:
    if name == "SSHTransport":
        from upkeeper_ssh.transport import SSHTransport

        return SSHTransport
    raise AttributeError(name)


@hookimpl
def upkeeper_register_transports() -> list[type[Transport]]:
    return [_Lazy]


@hookimpl
def upkeeper_register_commands() -> list[click.Command]:
    from upkeeper_ssh.cli import hostkeys  # paramiko: only when the command is used

    return [hostkeys]
