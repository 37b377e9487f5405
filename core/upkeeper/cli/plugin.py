"""``upkeeper plugin new``: scaffold a third-party plugin package."""

from __future__ import annotations

from pathlib import Path

import click

from upkeeper.cli.scaffold import ScaffoldError, new_plugin


@click.group()
def plugin() -> None:
    """Tools for plugin authors."""


@plugin.command("new")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Where to create the package directory.")
def new(name: str, parent: str) -> None:
    """Create a pip-installable plugin package NAME with a sample check and tests."""
    try:
        root = new_plugin(name, Path(parent))
    except ScaffoldError as exc:
        click.echo(f"upkeeper: error: {exc}", err=True)
        raise SystemExit(3) from exc
    click.echo(f"created {root}\n"
               f"  pip install -e '{root}[test]' && pytest {root}/tests\n"
               f"  upkeeper checks   # lists {name}.file_age")
