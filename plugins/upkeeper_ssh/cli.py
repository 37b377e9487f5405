"""``upkeeper hostkeys``: look at SSH host keys and trust them explicitly."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import paramiko

from upkeeper_ssh import hostkeys as hk
from upkeeper_ssh.logs import quiet_paramiko


@click.group("hostkeys")
def hostkeys_group() -> None:
    """SSH host keys: scan hosts, show fingerprints, accept them (trust on first use)."""


@hostkeys_group.command("scan")
@click.argument("hosts", nargs=-1, required=True)
@click.option("--port", "-p", default=22, show_default=True, type=click.IntRange(1, 65535),
              help="SSH port of every HOST.")
@click.option("--accept", is_flag=True,
              help="Record new keys in the upkeeper known_hosts file (or --known-hosts).")
@click.option("--known-hosts", "known_hosts", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="known_hosts file to check and write (default: upkeeper's own file; "
                   "~/.ssh/known_hosts is always read).")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per connection.")
def scan_command(hosts: tuple[str, ...], port: int, accept: bool, known_hosts: Path | None,
                 timeout: float) -> None:
    """Show the host keys of HOST... with their SHA256 fingerprints and whether they are
    known; --accept trusts new ones. A changed key is never overwritten: exit 2."""
    quiet_paramiko()
    target = known_hosts or hk.upkeeper_known_hosts()
    files = hk.default_files([str(target)])
    worst = 0
    for host in hosts:
        try:
            keys = hk.scan(host, port, timeout)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            click.echo(f"{host}:{port}: cannot scan: {exc or type(exc).__name__}", err=True)
            worst = max(worst, 3)
            continue
        name = hk.host_key_name(host, port)
        for key in keys:
            state = hk.status_of(host, port, key, files)
            line = f"{name} {hk.describe(key)}"
            if state == "changed":
                worst = 2
                click.secho(f"{line}  CHANGED: differs from the recorded key; NOT accepted. "
                            f"Remove the old entry if the change is expected.",
                            fg="red", bold=True, err=True)
            elif state == "new" and accept:
                hk.record(target, host, port, key)
                click.echo(f"{line}  accepted into {target}")
            else:
                click.echo(f"{line}  {state}")
        if not keys:
            click.echo(f"{name}: offered no host key upkeeper can use", err=True)
            worst = max(worst, 3)
    if worst:
        sys.exit(worst)


#: The name the upkeeper CLI mounts (``upkeeper hostkeys``).
hostkeys = hostkeys_group
