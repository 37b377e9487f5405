"""Commands that show what upkeeper knows: ``inventory list``, ``plugins``, ``checks``
and ``schema`` (imported only when one of them runs)."""

from __future__ import annotations

import click

from upkeeper.cli.common import AppState, fail, load_inventory_sources
from upkeeper.cli.output import print_table, to_json
from upkeeper.yamlsource import SourceError


@click.group()
def inventory() -> None:
    """Inspect inventories."""


@inventory.command("list")
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="INV")
@click.option("-l", "--limit", metavar="PATTERN")
@click.option("--format", "fmt", type=click.Choice(["table", "ansible-json", "json"]),
              default="table")
@click.option("--show-secrets", is_flag=True,
              help="Print values of secret vars (password, token ...) instead of ********.")
@click.pass_obj
def inventory_list(app: AppState, inventories: tuple[str, ...], limit: str | None,
                   fmt: str, show_secrets: bool) -> None:
    """List hosts; --format ansible-json prints what `ansible-inventory --list` prints
    (secret vars masked unless --show-secrets)."""
    from upkeeper.engine.secrets import mask_secret_vars
    from upkeeper.inventory.loader import ansible_json

    inv = load_inventory_sources(inventories, app.plugins)
    try:
        if fmt in ("ansible-json", "json"):
            doc = inv.to_ansible_list(limit)
            if not show_secrets:
                doc["_meta"]["hostvars"] = {name: mask_secret_vars(hv) for name, hv
                                            in doc["_meta"]["hostvars"].items()}
            click.echo(ansible_json(doc))
            return
        hosts = inv.select(limit or "all")
    except SourceError as exc:
        fail(str(exc))
    print_table(("Host", "Address", "Connection", "Groups"), [
        (h.name, h.address, h.connection,
         ",".join(g for g in h.groups if g not in ("all", "ungrouped"))) for h in hosts])


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def plugins(app: AppState, fmt: str) -> None:
    """Loaded plugins, what they provide, and errors of those that were skipped."""
    app.plugins.registry.resolve_checks()  # a check that cannot be imported is an error
    infos = app.plugins.plugins
    if fmt == "json":
        click.echo(to_json([i.to_dict() for i in infos]))
        return
    print_table(("Plugin", "Version", "Source", "Provides", "Status"), [
        (i.name, i.version, i.source, ",".join(i.checks + i.transports + i.notifiers),
         "disabled" if i.disabled else "; ".join(i.errors) if i.errors else "loaded")
        for i in infos], styles=["red" if i.errors else None for i in infos])


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def checks(app: AppState, fmt: str) -> None:
    """Every registered check and action with its params."""
    reg = app.plugins.registry
    described = [cls.describe() | {"plugin": reg.origin[("check", name)]}
                 for name, cls in reg.resolve_checks().items()]
    if fmt == "json":
        click.echo(to_json(described))
        return
    rows = []
    for d in described:
        props = d["params"].get("properties", {})
        required = set(d["params"].get("required", []))
        params = ",".join(f"{k}{'*' if k in required else ''}" for k in props)
        rows.append((d["name"], d["kind"], ",".join(d["platforms"]), params,
                     d["description"]))
    print_table(("Check", "Kind", "Platforms", "Params", "Description"), rows)



@click.command()
@click.argument("what", type=click.Choice(["playbook"]))
def schema(what: str) -> None:
    """JSON Schema for playbooks (for editors: yaml-language-server)."""
    from upkeeper.engine.playbook import Playbook

    doc = Playbook.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "upkeeper playbook"
    click.echo(to_json(doc))
