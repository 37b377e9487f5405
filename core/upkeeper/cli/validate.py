"""``upkeeper validate``: everything a run would reject, found without running anything:
for one playbook or every playbook under a ``serve --playbooks`` directory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from upkeeper.cli.common import (
    EXIT_INVALID,
    AppState,
    fail,
    load_inventory_sources,
    log,
    pattern_hints,
    validate_extras,
)
from upkeeper.cli.output import to_json
from upkeeper.engine.templating import is_templated
from upkeeper.yamlsource import SourceError

PLAYBOOK_SUFFIXES = (".yml", ".yaml")
#: Host vars naming a TCP port, as the SSH and WinRM transports read them.
PORT_VARS = ("ansible_port", "ansible_ssh_port", "ansible_winrm_port")


def port_problems(inv: Any, hosts: list[Any]) -> list[str]:
    """Ports that are not integers in 1..65535, naming the host and where the value was
    set (templated values are checked when rendered, at run time)."""
    problems = []
    for host in hosts:
        for key in PORT_VARS:
            value = host.vars.get(key)
            if value is None or is_templated(value):
                continue
            try:
                port = int(value) if not isinstance(value, (bool, float)) else None
            except (TypeError, ValueError):
                port = None
            if port is None or not 1 <= port <= 65535:
                source = inv.var_source(host.name, key) if hasattr(inv, "var_source") else None
                where = f" (set in {source})" if source else ""
                problems.append(f"host {host.name}: {key} {value!r} is not a port number "
                                f"(1-65535){where}")
    return problems


def notify_template_problems(pb: Any) -> list[str]:
    """Syntax errors in the notification templates of ``notify: {template_dir: DIR}``
    (the run would only find them when it has something to send)."""
    raw = pb.notify
    tdir = raw.get("template_dir") if isinstance(raw, dict) else None
    if not isinstance(tdir, str) or not Path(tdir).expanduser().is_dir():
        return []
    import jinja2

    from upkeeper.yamlsource import read_text

    env = jinja2.Environment()
    problems = []
    for template in sorted(Path(tdir).expanduser().glob("*.j2")):
        try:
            env.parse(read_text(template), template.name, str(template))
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{template}:{exc.lineno}: notify template syntax error: "
                            f"{exc.message}")
        except SourceError as exc:
            problems.append(str(exc))
    return problems


def check_playbook(app: AppState, path: str, inv: Any, limit: str | None,
                   hosts_required: bool) -> tuple[list[str], str]:
    """(problems, summary) for one playbook."""
    from upkeeper.after_run.validate import preflight
    from upkeeper.engine.playbook import PlaybookError, load_playbook
    from upkeeper.engine.runner import select_hosts

    try:
        pb = load_playbook(path, app.plugins.registry, strict=True)
    except PlaybookError as exc:
        return [str(p) for p in exc.problems], ""
    except SourceError as exc:
        return [str(exc)], ""
    problems = validate_extras(pb, app.plugins) + notify_template_problems(pb)
    try:
        hosts = select_hosts(inv, pb.hosts, limit)
    except SourceError as exc:
        return [*problems, f"{path}: hosts: {exc}"], ""
    hints = [*pattern_hints(inv, pb.hosts), *pattern_hints(inv, limit)]
    if not hosts and hosts_required:
        problems.append(f"{path}: no hosts match '{pb.hosts}'"
                        + (f" limited to '{limit}'" if limit else "")
                        + "".join(f"; {h}" for h in hints))
    for hint in hints if hosts or not hosts_required else []:
        log.warning("%s: %s", path, hint)
    problems += port_problems(inv, hosts)
    problems += preflight(pb, hosts, app.plugins.registry)  # checks and notify, per host
    return problems, f"{len(pb.checks)} checks, {len(hosts)} hosts"


def playbook_files(target: Path) -> list[Path]:
    """The playbook itself, or every ``*.yml``/``*.yaml`` under a directory (as
    ``serve --playbooks`` finds them)."""
    if not target.is_dir():
        return [target]
    return sorted(p for p in target.rglob("*") if p.suffix in PLAYBOOK_SUFFIXES
                  and p.is_file() and not any(part.startswith(".") for part in
                                               p.relative_to(target).parts))


@click.command()
@click.argument("target", metavar="PLAYBOOK|DIR", type=click.Path())
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="INV",
              help="Inventory file or directory (repeatable). Default: this machine only.")
@click.option("-l", "--limit", metavar="PATTERN")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def validate(app: AppState, target: str, inventories: tuple[str, ...], limit: str | None,
             fmt: str) -> None:
    """Check PLAYBOOK, or every playbook under DIR (as `serve --playbooks DIR` loads them),
    and with -i their variables on every host, without running anything. Every problem is
    reported; exit 0 when all are valid, else 3."""
    path = Path(target)
    if not path.exists():
        fail(f"playbook {target}: no such file or directory")
    files = playbook_files(path)
    if not files:
        fail(f"{target}: no playbooks (*.yml, *.yaml) in this directory")
    inv = load_inventory_sources(inventories, app.plugins)
    reports: list[dict[str, Any]] = []
    for book in files:
        problems, summary = check_playbook(app, str(book), inv, limit, bool(inventories))
        reports.append({"path": str(book), "ok": not problems, "summary": summary,
                        "problems": problems})
    exit_code = EXIT_INVALID if any(not r["ok"] for r in reports) else 0
    if fmt == "json":
        click.echo(to_json({"playbooks": reports, "exit_code": exit_code}))
    else:
        for r in reports:
            if r["ok"]:
                click.echo(f"{r['path']}: OK ({r['summary']})")
            for p in r["problems"]:
                click.echo(f"upkeeper: error: {p}", err=True)
    sys.exit(exit_code)
