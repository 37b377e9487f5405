"""``upkeeper fixes`` (plans waiting for approval, approve/deny, quarantines, the fixes
plugins provide) and ``upkeeper audit`` (read and verify the remediation audit trail).

``audit verify`` exits 0 when the chain is intact and 2 (CRIT) when a record was edited,
removed or reordered.
"""

from __future__ import annotations

import getpass
import shlex
import sys
from datetime import datetime
from typing import Any

import click

from upkeeper.after_run.text import clean_text
from upkeeper.cli.output import print_table, to_json
from upkeeper.cli.state import die, open_history, resolve_state_dir

FORMATS = click.Choice(["table", "json"])


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else "-"


@click.group()
def fixes() -> None:
    """Fixes: plans waiting for approval, approve or deny them, lift quarantines."""


@fixes.command("list")
@click.option("--client", help="Only this client's hosts.")
@click.option("--host", help="Only this host.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_context
def list_cmd(ctx: click.Context, client: str | None, host: str | None, fmt: str) -> None:
    """Plans waiting for approval (expired ones are denied and recorded first), approved
    plans not applied yet, and fixes quarantined on a host."""
    from upkeeper.monthly.state import host_clients
    from upkeeper.remediation.approvals import Approvals
    from upkeeper.remediation.budget import Budgets

    db = open_history(resolve_state_dir(ctx))
    queue = Approvals(db)
    waiting = queue.pending(client=client, host=host)
    ready = queue.approved(client=client, host=host)
    owners = host_clients(db) if client is not None else {}
    stuck = [b for b in Budgets(db).all(quarantined_only=True)
             if (host is None or b.host == host)
             and (client is None or owners.get(b.host) == client)]
    if fmt == "json":
        click.echo(to_json({
            "pending": [_approval_dict(a) for a in waiting],
            "approved": [_approval_dict(a) for a in ready],
            "quarantined": [{"host": b.host, "fix": b.fix, "reason": b.reason,
                             "since": b.quarantined} for b in stuck]}))
        return
    if not waiting and not ready and not stuck:
        click.echo("no plans wait for approval; no fix is quarantined")
        return
    if waiting:
        print_table(("Id", "Host", "Client", "Fix", "Plan", "Expires"),
                    [(a.id, a.host, a.client or "-", a.fix, a.plan.get("summary", ""),
                      _when(a.expires)) for a in waiting])
    if ready:
        click.echo("approved, applied by the next run that finds the same failure:")
        print_table(("Id", "Host", "Client", "Fix", "Plan", "Expires"),
                    [(a.id, a.host, a.client or "-", a.fix, a.plan.get("summary", ""),
                      _when(a.expires)) for a in ready])
    if stuck:
        click.echo("quarantined (upkeeper fixes release HOST FIX):")
        print_table(("Host", "Fix", "Reason"), [(b.host, b.fix, b.reason) for b in stuck])


def _approval_dict(a: Any) -> dict[str, Any]:
    return {"id": a.id, "host": a.host, "client": a.client, "check": a.check, "fix": a.fix,
            "plan": a.plan, "created": a.created.isoformat(),
            "expires": a.expires.isoformat()}


@fixes.command()
@click.argument("approval_id")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_context
def show(ctx: click.Context, approval_id: str, fmt: str) -> None:
    """One approval with its whole plan (files, locks, services and commands)."""
    from upkeeper.remediation.approvals import ApprovalError, Approvals

    try:
        a = Approvals(open_history(resolve_state_dir(ctx))).get(approval_id)
    except ApprovalError as exc:
        die(str(exc))
    data: dict[str, Any] = {"id": a.id, "state": a.state, "host": a.host,
                            "client": a.client, "check": a.check, "fix": a.fix,
                            "plan": a.plan, "expires": a.expires.isoformat(),
                            "decided_by": a.decided_by, "reason": a.reason}
    lines = [f"{a.id} [{a.state}] {a.fix} on {a.host} ({a.check})",
             f"plan: {a.plan.get('summary', '')}",
             *(f"  change: {c}" for c in a.plan.get("changes", [])),
             *(f"  run: {shlex.join(c)}" for c in a.plan.get("commands", [])),
             f"expires: {_when(a.expires)}"]
    # The plan names files and mounts the host chose: shown without escape sequences.
    click.echo(to_json(data) if fmt == "json" else "\n".join(
        clean_text(line, single_line=True) for line in lines))


@fixes.command()
@click.argument("approval_id")
@click.pass_context
def approve(ctx: click.Context, approval_id: str) -> None:
    """Approve a waiting plan: it is applied the next time its fix triggers on that
    host with the same plan (inside the host's maintenance window)."""
    from upkeeper.remediation.approvals import ApprovalError, Approvals

    try:
        a = Approvals(open_history(resolve_state_dir(ctx))).approve(
            approval_id, _actor())
    except ApprovalError as exc:
        die(str(exc))
    click.echo(clean_text(f"approved {a.id}: {a.fix} on {a.host}: "
                          f"{a.plan.get('summary', '')}", single_line=True))


@fixes.command()
@click.argument("approval_id")
@click.option("--reason", default="", help="Recorded with the denial.")
@click.pass_context
def deny(ctx: click.Context, approval_id: str, reason: str) -> None:
    """Deny a waiting (or approved, not yet applied) plan."""
    from upkeeper.remediation.approvals import ApprovalError, Approvals

    try:
        a = Approvals(open_history(resolve_state_dir(ctx))).deny(
            approval_id, _actor(), reason)
    except ApprovalError as exc:
        die(str(exc))
    click.echo(clean_text(f"denied {a.id}: {a.fix} on {a.host}", single_line=True))


@fixes.command()
@click.argument("host")
@click.argument("fix")
@click.pass_context
def release(ctx: click.Context, host: str, fix: str) -> None:
    """Lift the quarantine of FIX on HOST (its failure count starts again)."""
    from upkeeper.remediation.audit import AuditLog
    from upkeeper.remediation.budget import Budgets

    db = open_history(resolve_state_dir(ctx))
    if not Budgets(db).release(host, fix):
        die(f"{fix} is not quarantined on {host} (see `upkeeper fixes list`)")
    AuditLog(db).append("release", _actor(), f"{host}/{fix}", {"fix": fix}, host=host)
    click.echo(f"released {fix} on {host}")


@fixes.command()
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_obj
def available(app: Any, fmt: str) -> None:
    """The fixes plugins provide: what each handles, its default tier, its platforms."""
    from upkeeper.remediation.registry import FixRegistry

    reg = FixRegistry.from_plugins(app.plugins)
    described = [reg.get(n).describe() | {"plugin": reg.owner(n)}  # type: ignore[union-attr]
                 for n in reg.names()]
    if fmt == "json":
        click.echo(to_json(described))
        return
    print_table(("Fix", "Handles", "Tier", "Platforms", "Plugin"),
                [(d["name"], ", ".join(sorted({h["check"] for h in d["handles"]})),
                  d["default_tier"], ",".join(d["platforms"]), d["plugin"])
                 for d in described])


@click.group()
def audit() -> None:
    """The remediation audit trail (append-only, hash-chained)."""


@audit.command()
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_context
def verify(ctx: click.Context, fmt: str) -> None:
    """Check the chain: exit 0 when intact, 2 when a record was edited or removed."""
    from upkeeper.remediation.audit import AuditLog

    log = AuditLog(open_history(resolve_state_dir(ctx)))
    problems = log.verify()
    last = log.records(newest_first=True, limit=1)
    count = last[0].seq if last else 0
    if fmt == "json":
        click.echo(to_json({"status": "CRIT" if problems else "OK", "intact": not problems,
                            "records": count, "problems": problems,
                            "exit_code": 2 if problems else 0}))
        sys.exit(2 if problems else 0)
    if problems:
        for p in problems:
            click.echo(f"audit: {p}", err=True)
        click.echo(f"CRIT: the audit trail was tampered with ({len(problems)} problem"
                   f"{'s' if len(problems) > 1 else ''})")
        sys.exit(2)
    click.echo(f"OK: {count} records, chain intact")


@audit.command("list")
@click.option("--host", help="Only this host.")
@click.option("--client", help="Only this client.")
@click.option("--kind", "kinds", multiple=True, help="Only these kinds (repeatable).")
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_context
def list_audit(ctx: click.Context, host: str | None, client: str | None,
               kinds: tuple[str, ...], limit: int, fmt: str) -> None:
    """Audit records, newest first."""
    from upkeeper.remediation.audit import AuditLog

    records = AuditLog(open_history(resolve_state_dir(ctx))).records(
        host=host, client=client, kinds=kinds or None, limit=limit, newest_first=True)
    if fmt == "json":
        click.echo(to_json([{"seq": r.seq, "ts": r.ts.isoformat(), "kind": r.kind,
                             "actor": r.actor, "subject": r.subject, "host": r.host,
                             "client": r.client, "data": r.data, "hash": r.hash}
                            for r in records]))
        return
    print_table(("Seq", "Time", "Kind", "Actor", "Subject", "Note"),
                [(str(r.seq), _when(r.ts), r.kind, r.actor, r.subject,
                  str(r.data.get("reason") or r.data.get("plan", {}).get("summary", "")
                      if isinstance(r.data.get("plan", {}), dict) else ""))
                 for r in records])
