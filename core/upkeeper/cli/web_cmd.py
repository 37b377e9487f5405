"""``upkeeper web``: serve the dashboard, and manage its users (``web user add``)."""

from __future__ import annotations

import sys

import click

from upkeeper.cli.state import die, open_history, resolve_state_dir


@click.group(invoke_without_command=True)
@click.option("--bind", default="127.0.0.1:8470", show_default=True, metavar="HOST:PORT",
              help="Address to listen on; other than loopback only with users configured.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="TLS certificate (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="TLS private key (PEM).")
@click.option("--secure-cookies", is_flag=True,
              help="Mark cookies Secure without --tls-cert (behind an HTTPS reverse proxy).")
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="INV",
              help="Inventory, to show hosts' maintenance windows (repeatable).")
@click.pass_context
def web(ctx: click.Context, bind: str, tls_cert: str | None, tls_key: str | None,
        secure_cookies: bool, inventories: tuple[str, ...]) -> None:
    """Serve the dashboard over the history (http://127.0.0.1:8470/ by default)."""
    if ctx.invoked_subcommand is not None:
        return
    from upkeeper.web.server import WebServer, WebSetupError, inventory_vars, parse_bind

    history = open_history(resolve_state_dir(ctx), create=True)
    inventory = None
    if inventories:
        from upkeeper.cli.common import load_inventory_sources

        inventory = load_inventory_sources(inventories, ctx.find_root().obj.plugins)
    try:
        server = WebServer(history, parse_bind(bind), tls_cert=tls_cert, tls_key=tls_key,
                           secure_cookies=secure_cookies,
                           inventory=inventory_vars(inventory))
    except WebSetupError as exc:
        die(str(exc))
    click.echo(f"upkeeper dashboard on {server.url} (Ctrl-C stops)", err=True)
    try:
        server.run()
    finally:
        history.close()


@web.group()
def user() -> None:
    """Dashboard users (kept in the history database)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True,
              help="viewer reads; operator also mutes, acknowledges and approves fixes.")
@click.option("--client", "clients", multiple=True, metavar="CLIENT",
              help="Only this client's hosts and runs (repeatable); default every client.")
@click.option("--token", is_flag=True,
              help="Give an API token (printed once) instead of a password.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.pass_context
def user_add(ctx: click.Context, name: str, role: str, clients: tuple[str, ...], token: bool,
             password_stdin: bool) -> None:
    """Add or replace user NAME (the password is asked for, never taken from argv)."""
    from upkeeper.web.auth import AuthError, Users

    password = None
    if not token:
        if password_stdin or not sys.stdin.isatty():
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    history = open_history(resolve_state_dir(ctx), create=True)
    try:
        new_token = Users(history).add(name, role, clients, password=password, token=token)
    except AuthError as exc:
        die(str(exc))
    finally:
        history.close()
    scope = f" for client {', '.join(clients)}" if clients else ""
    click.echo(f"user {name} ({role}{scope}) saved", err=True)
    if new_token:
        click.echo(new_token)


@user.command("remove")
@click.argument("name")
@click.pass_context
def user_remove(ctx: click.Context, name: str) -> None:
    """Remove user NAME and end their sessions."""
    from upkeeper.web.auth import Users

    history = open_history(resolve_state_dir(ctx))
    try:
        if not Users(history).remove(name):
            die(f"no user {name!r}")
    finally:
        history.close()


@user.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def user_list(ctx: click.Context, fmt: str) -> None:
    """Users, their roles and client scopes."""
    from upkeeper.cli.output import print_table, to_json
    from upkeeper.web.auth import Users

    history = open_history(resolve_state_dir(ctx))
    try:
        users = [{"name": u["name"], "role": u["role"],
                  "clients": [str(c) for c in u["clients"]],
                  "login": "token" if u["token"] else "password"}
                 for u in Users(history).list()]
    finally:
        history.close()
    if fmt == "json":
        click.echo(to_json(users))
        return
    print_table(("User", "Role", "Clients", "Login"),
                [(u["name"], u["role"], ",".join(u["clients"]) or "all clients", u["login"])
                 for u in users])
