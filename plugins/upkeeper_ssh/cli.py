"""``upkeeper hostkeys``: look at SSH host keys, trust them explicitly, forget changed ones."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import click
import paramiko

from upkeeper import Host
from upkeeper_ssh import hostkeys as hk
from upkeeper_ssh import known_hosts as kh
from upkeeper_ssh.config import ConfigError, parse_endpoint, settings_from_host
from upkeeper_ssh.logs import quiet_paramiko

#: Exit codes, monitoring-plugin style: a changed or revoked key (CRIT) outranks a host
#: that could not be scanned (UNKNOWN).
CRIT, UNKNOWN = 2, 3


@dataclass
class Target:
    """One address and port to scan, and the inventory hosts that use it."""

    host: str
    port: int
    names: list[str] = field(default_factory=list)
    #: The hosts' own ``ssh_known_hosts_file`` entries, read as the transport reads them.
    known_hosts_files: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return hk.host_key_name(self.host, self.port)

    @property
    def aliases(self) -> str:
        others = [n for n in self.names if n != self.host]
        return f"  ({', '.join(others)})" if others else ""


class Invalid(click.ClickException):
    """Bad input: one line on stderr and exit 3 (UNKNOWN), as the other commands do."""

    exit_code = UNKNOWN

    def show(self, file: object = None) -> None:
        click.echo(f"upkeeper: error: {self.format_message()}", err=True)


def _worse(a: int, b: int) -> int:
    rank = {0: 0, UNKNOWN: 1, CRIT: 2}
    return a if rank.get(a, 1) >= rank.get(b, 1) else b


@click.group("hostkeys")
def hostkeys_group() -> None:
    """SSH host keys: scan hosts, show fingerprints, accept them (trust on first use)."""


@hostkeys_group.command("scan")
@click.argument("hosts", nargs=-1)
@click.option("--inventory", "-i", "inventories", multiple=True, metavar="INVENTORY",
              help="Scan the SSH hosts of this inventory (file, directory or host list; "
                   "repeatable), each at its own ansible_host and ansible_port.")
@click.option("--limit", "-l", default=None, metavar="PATTERN",
              help="Only the inventory hosts matching this Ansible host pattern.")
@click.option("--port", "-p", default=22, show_default=True, type=click.IntRange(1, 65535),
              help="SSH port of every HOST given without one (HOST:PORT, [V6]:PORT).")
@click.option("--accept", is_flag=True,
              help="Record new keys in the upkeeper known_hosts file (or --known-hosts).")
@click.option("--known-hosts", "known_hosts", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="known_hosts file to check and write (default: upkeeper's own file; "
                   "~/.ssh/known_hosts is always read).")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds per connection.")
@click.option("--forks", "-f", default=10, show_default=True, type=click.IntRange(1, 256),
              help="Hosts scanned at the same time.")
def scan_command(hosts: tuple[str, ...], inventories: tuple[str, ...], limit: str | None,
                 port: int, accept: bool, known_hosts: Path | None, timeout: float,
                 forks: int) -> None:
    """Show the host keys of HOST... (or of an inventory's hosts) with their SHA256
    fingerprints and whether they are known; --accept trusts new ones. A changed or
    revoked key is never accepted: exit 2. A host that cannot be scanned: exit 3."""
    quiet_paramiko()
    if not hosts and not inventories:
        raise Invalid("name a HOST or an inventory (-i INVENTORY)")
    if limit and not inventories:
        raise Invalid("--limit selects inventory hosts: add -i INVENTORY")
    target = known_hosts or hk.upkeeper_known_hosts()
    files = hk.default_files([str(target)])
    targets, worst = _targets(hosts, port, inventories, limit)
    with ThreadPoolExecutor(max_workers=forks) as pool:
        futures = [pool.submit(_scan_one, t, timeout) for t in targets]
        # Printed (and recorded) here, in order, so appends to the file never interleave.
        for t, future in zip(targets, futures, strict=True):
            keys = future.result()
            if isinstance(keys, str):
                click.echo(f"{t.label}: cannot scan: {keys}{t.aliases}", err=True)
                worst = _worse(worst, UNKNOWN)
                continue
            worst = _worse(worst, _report(t, keys, files, target, accept))
    if worst:
        sys.exit(worst)


def _targets(hosts: Iterable[str], port: int, inventories: tuple[str, ...],
             limit: str | None) -> tuple[list[Target], int]:
    found: dict[tuple[str, int], Target] = {}
    worst = 0
    for text in hosts:
        try:
            ep = parse_endpoint(text, default_port=port, what="host")
        except ConfigError as exc:
            raise Invalid(str(exc)) from None
        found.setdefault((ep.host, ep.port), Target(ep.host, ep.port))
    if inventories:
        for name, problem in _inventory_targets(inventories, limit, found):
            click.echo(f"{name}: {problem}", err=True)
            worst = UNKNOWN
    return list(found.values()), worst


def _inventory_targets(inventories: tuple[str, ...], limit: str | None,
                       found: dict[tuple[str, int], Target]) -> list[tuple[str, str]]:
    """Add the inventory's SSH hosts to ``found``; the (host, problem) pairs it skipped."""
    from upkeeper import InventoryError, load_hosts

    try:
        selected = load_hosts(list(inventories), limit)
    except InventoryError as exc:
        raise Invalid(str(exc)) from None
    if not selected:
        raise Invalid(f"no inventory host matches {limit or 'all'!r}")
    problems: list[tuple[str, str]] = []
    skipped: list[str] = []
    for host in selected:
        if host.connection != "ssh":
            skipped.append(host.name)
            continue
        problem = _add_host(host, found)
        if problem:
            problems.append((host.name, problem))
    if skipped:
        click.echo(f"skipped {len(skipped)} host(s) that do not use SSH: "
                   f"{', '.join(skipped)}", err=True)
    return problems


def _add_host(host: Host, found: dict[tuple[str, int], Target]) -> str | None:
    try:
        settings = settings_from_host(host)
    except ConfigError as exc:
        return f"cannot scan: {exc}"
    ep = settings.target
    if "{{" in ep.host or "{%" in ep.host:
        return f"cannot scan: ansible_host is a template ({ep.host!r}); scan its address"
    if settings.jump_hosts:
        return (f"cannot scan: reached through jump host {settings.jump_hosts[-1]}; "
                f"scan it from there (ssh-keyscan) and add the line to known_hosts")
    t = found.setdefault((ep.host, ep.port), Target(ep.host, ep.port))
    t.names.append(host.name)
    t.known_hosts_files.extend(f for f in settings.known_hosts_files
                               if f not in t.known_hosts_files)
    return None


def _scan_one(t: Target, timeout: float) -> list[paramiko.PKey] | str:
    try:
        return hk.scan(t.host, t.port, timeout)
    except hk.ScanError as exc:
        return str(exc)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _report(t: Target, keys: list[paramiko.PKey], files: list[str], target: Path,
            accept: bool) -> int:
    if not keys:
        click.echo(f"{t.label}: offered no host key upkeeper can use{t.aliases}", err=True)
        return UNKNOWN
    worst = 0
    for key in keys:
        state, entry = hk.status_of(t.host, t.port, key, [*files, *t.known_hosts_files])
        line = f"{t.label} {hk.describe(key)}"
        if state == "revoked" and entry is not None:
            worst = CRIT
            click.secho(f"{line}  REVOKED by {entry.where}; NOT accepted{t.aliases}",
                        fg="red", bold=True, err=True)
        elif state == "changed" and entry is not None:
            worst = CRIT
            click.secho(f"{line}  CHANGED: {entry.where} holds {hk.describe(entry.key)}; "
                        f"NOT accepted. If the change is expected, run "
                        f"`{hk.forget_command(t.host, t.port, entry.path)}` and scan "
                        f"again{t.aliases}", fg="red", bold=True, err=True)
        elif state == "new" and accept:
            hk.record(target, t.host, t.port, key)
            click.echo(f"{line}  accepted into {target}{t.aliases}")
        else:
            click.echo(f"{line}  {state}{t.aliases}")
    return worst


@hostkeys_group.command("forget")
@click.argument("hosts", nargs=-1, required=True)
@click.option("--port", "-p", default=22, show_default=True, type=click.IntRange(1, 65535),
              help="SSH port of every HOST given without one (HOST:PORT, [V6]:PORT).")
@click.option("--known-hosts", "known_hosts", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="known_hosts file to edit (repeatable; default: upkeeper's own file).")
def forget_command(hosts: tuple[str, ...], port: int, known_hosts: tuple[Path, ...]) -> None:
    """Remove every recorded key of HOST... (hashed entries too), e.g. after a host was
    reinstalled; then `upkeeper hostkeys scan HOST --accept` records the new one.
    @cert-authority and @revoked lines are kept. The old file is saved as FILE.old."""
    files = list(known_hosts) or [hk.upkeeper_known_hosts()]
    for text in hosts:
        try:
            ep = parse_endpoint(text, default_port=port, what="host")
        except ConfigError as exc:
            raise Invalid(str(exc)) from None
        name = hk.host_key_name(ep.host, ep.port)
        for path in files:
            done = kh.forget(path.expanduser(), name)
            if done.removed:
                lines = ", ".join(str(n) for n in done.removed)
                click.echo(f"{name}: removed {len(done.removed)} entr"
                           f"{'y' if len(done.removed) == 1 else 'ies'} from {path} "
                           f"(line {lines}); previous file kept as {path}.old")
            else:
                click.echo(f"{name}: no entry in {path}")
            for note in done.kept:
                click.echo(f"warning: {note}", err=True)
        _hint_other_files(name, files)


def _hint_other_files(name: str, edited: list[Path]) -> None:
    """Point at entries for ``name`` in files upkeeper also reads but was not told to edit."""
    done = {str(p.expanduser()) for p in edited}
    for path in hk.default_files():
        if path in done:
            continue
        left = [e for e in kh.for_host(name, [path]) if not e.marker]
        if left:
            click.echo(f"note: {path} still holds {len(left)} key(s) for {name} (line "
                       f"{', '.join(str(e.line) for e in left)}); add --known-hosts "
                       f"{path} to remove them", err=True)


#: The name the upkeeper CLI mounts (``upkeeper hostkeys``).
hostkeys = hostkeys_group
