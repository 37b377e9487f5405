"""Every hook a plugin may implement. Bodies are documentation only.

Implementations take only the arguments they use (pluggy passes them by name), so a
spec can gain arguments without breaking plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from upkeeper.models import Result, RunRecord

PROJECT = "upkeeper"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def upkeeper_register_checks() -> list[type[Any]]:
    """Checks and actions this plugin provides.

    :returns: a list of :class:`upkeeper.Check` / :class:`upkeeper.Action` subclasses,
        each with a unique dotted ``name`` (``myplugin.mycheck``).
    """


@hookspec
def upkeeper_register_transports() -> list[type[Any]]:
    """Transports this plugin provides.

    :returns: a list of :class:`upkeeper.Transport` subclasses; each ``name`` is the
        ``ansible_connection`` value that selects it.
    """


@hookspec
def upkeeper_register_inventory_sources() -> list[Any]:
    """Extra inventory sources (e.g. a PSA or RMM API).

    :returns: a list of objects with ``name``, ``matches(source: str) -> bool`` and
        ``load(source: str) -> dict`` returning an ``ansible-inventory --list`` style
        document; the first source that matches an ``-i`` argument loads it.
    """


@hookspec
def upkeeper_register_notifiers() -> list[type[Any]]:
    """Notifiers this plugin provides.

    :returns: a list of :class:`upkeeper.Notifier` subclasses, each with a unique
        ``name`` used by playbooks' ``notify:`` entries.
    """


@hookspec
def upkeeper_register_template_dirs() -> list[str]:
    """Directories holding Jinja2 report templates, searched after the user's own.

    :returns: a list of directory paths.
    """


@hookspec
def upkeeper_result(result: Result) -> None:
    """Called for each result as it lands (from worker threads; keep it quick).

    :param result: the finished result, already stored in history.
    """


@hookspec
def upkeeper_run_finished(run: RunRecord) -> None:
    """Called once after a run with every result: notify, report, export.

    :param run: the run record (``run.results``, ``run.status``, ``run.meta``).
    """
