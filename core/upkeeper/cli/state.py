"""The state dir on the command line: ``--state-dir`` accepted after every subcommand,
and opening the history database with one clear error (exit 3) instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click

from upkeeper.store.history import DB_NAME, History, HistoryError, default_state_dir


def die(message: str) -> NoReturn:
    """One line on stderr (or a JSON error document with ``--format json``), exit 3."""
    from upkeeper.cli.common import fail

    fail(message)


def resolve_state_dir(ctx: click.Context, given: str | None = None) -> Path:
    """``given``, else what the root group got (``--state-dir`` before or after the
    subcommand, or ``$UPKEEPER_STATE_DIR``), else the platform default."""
    if given:
        return Path(given)
    state = getattr(ctx.find_root().obj, "state_dir", None)
    return Path(state) if state else default_state_dir()


def open_history(state_dir: Path, *, create: bool = False) -> History:
    """The state dir's history; a command that only reads passes ``create=False`` and
    creates nothing when there is none."""
    try:
        return History(state_dir / DB_NAME, create=create)
    except HistoryError as exc:
        die(str(exc))


def duration(value: str, what: str) -> float:
    from upkeeper.schedule.specs import ScheduleError, duration_seconds

    try:
        return duration_seconds(value, what)
    except ScheduleError as exc:
        raise click.BadParameter(str(exc)) from None


def _remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        root = ctx.find_root().obj
        if root is not None and hasattr(root, "state_dir"):
            root.state_dir = Path(value)


def with_state_dir(cmd: click.Command | None) -> click.Command | None:
    """Give ``cmd`` (and every subcommand of a group) a ``--state-dir`` option that sets
    the root's state dir, unless it declares its own."""
    if cmd is None:
        return None
    if not any("--state-dir" in getattr(p, "opts", ()) for p in cmd.params):
        cmd.params.append(click.Option(
            ["--state-dir"], type=click.Path(file_okay=False), expose_value=False,
            is_eager=True, callback=_remember,
            help="Where history is kept (as before the subcommand)."))
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            with_state_dir(sub)
    return cmd
