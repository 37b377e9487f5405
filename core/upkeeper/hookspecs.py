"""Every hook a plugin may implement. Bodies are documentation only.

Implementations take only the arguments they use (pluggy passes them by name), so a
spec can gain arguments without breaking plugins. Hooks are typed with Protocols (this
module sits below the classes plugins subclass), so ``upkeeper.Check`` subclasses,
``upkeeper.Transport`` subclasses and so on satisfy them. "Since" is the plugin API
version (``upkeeper.API_VERSION``) that introduced the hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from upkeeper.models import CommandResult, Host, Notification, ReportSection, Result, RunRecord

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

PROJECT = "upkeeper"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class CheckClass(Protocol):
    """A check or action class: a subclass of :class:`upkeeper.Check` or ``Action``."""

    @property
    def name(self) -> str: ...

    @property
    def Params(self) -> type[BaseModel]: ...

    @property
    def platforms(self) -> tuple[str, ...]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CheckRef:
    """A check or action named without importing its module. Since 1.1.

    ``upkeeper_register_checks`` may return these instead of classes: the module of
    ``target`` (``"package.module:Class"``) is imported the first time a playbook uses
    ``name`` (``upkeeper checks`` and ``upkeeper plugins`` import all of them), so a run
    pays only for the checks it runs. The class found there must be a ``Check`` or
    ``Action`` subclass whose ``name`` is ``name``; otherwise, or when the import fails,
    the check is reported unavailable (an error on the plugin, UNKNOWN results where a
    playbook uses it) exactly as if its plugin had failed to import.

    :raises ValueError: ``name`` is empty or ``target`` is not ``module.path:Class``.
    """

    name: str
    target: str

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name):
            raise ValueError(f"CheckRef name {self.name!r} is not a check name")
        module, _, attr = str(self.target).partition(":")
        if not (isinstance(self.target, str) and attr.isidentifier()
                and all(part.isidentifier() for part in module.split("."))):
            raise ValueError(f"CheckRef {self.name!r}: target {self.target!r} is not "
                             "'package.module:Class'")


class TransportLike(Protocol):
    """A connection to one host (what a :class:`upkeeper.Transport` instance offers)."""

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            sudo: bool = False, stdin: str | bytes | None = None,
            env: Mapping[str, str] | None = None) -> CommandResult: ...

    def close(self) -> None: ...


class TransportClass(Protocol):
    """A :class:`upkeeper.Transport` subclass: ``name`` is the ``ansible_connection``
    value; the first of ``os_families`` is the family a host reached by it has until its
    facts say otherwise."""

    @property
    def name(self) -> str: ...

    @property
    def os_families(self) -> tuple[str, ...]: ...

    def __call__(self, host: Host) -> TransportLike: ...


class NotifierLike(Protocol):
    """What a :class:`upkeeper.Notifier` instance offers."""

    def send(self, notification: Notification) -> None: ...


class NotifierClass(Protocol):
    """A :class:`upkeeper.Notifier` subclass, built with its validated ``Params``."""

    @property
    def name(self) -> str: ...

    @property
    def Params(self) -> type[BaseModel]: ...

    def __call__(self, params: BaseModel) -> NotifierLike: ...


class DocCategoryLike(Protocol):
    """A category of facts for client documents (an :class:`upkeeper.DocCategory`)."""

    @property
    def key(self) -> str: ...

    @property
    def title(self) -> str: ...


class InventorySource(Protocol):
    """Hosts from somewhere other than files (a PSA or RMM API)."""

    @property
    def name(self) -> str: ...

    def matches(self, source: str) -> bool:
        """True when this source loads the ``-i`` argument ``source``."""

    def load(self, source: str) -> Mapping[str, Any]:
        """An ``ansible-inventory --list`` style document."""


@hookspec
def upkeeper_register_checks() -> list[CheckClass | CheckRef]:
    """Checks and actions this plugin provides. Since 1.0.

    :returns: :class:`upkeeper.Check` / :class:`upkeeper.Action` subclasses, each with a
        unique dotted ``name`` (``myplugin.mycheck``) and a pydantic ``Params`` model, or
        (since 1.1) :class:`CheckRef` objects naming such a class by ``module:Class``, so
        that its module is imported only when a playbook uses it.
    """


@hookspec
def upkeeper_register_transports() -> list[TransportClass]:
    """Transports this plugin provides. Since 1.0.

    :returns: :class:`upkeeper.Transport` subclasses; each ``name`` is the
        ``ansible_connection`` value that selects it, and the first of its
        ``os_families`` is the OS family of its hosts before facts are gathered.
    """


@hookspec
def upkeeper_register_inventory_sources() -> list[InventorySource]:
    """Extra inventory sources (e.g. a PSA or RMM API). Since 1.0.

    :returns: objects with ``name``, ``matches(source: str) -> bool`` and
        ``load(source: str) -> dict`` returning an ``ansible-inventory --list`` style
        document (:class:`InventorySource`); the first source that matches an ``-i``
        argument loads it.
    """


@hookspec
def upkeeper_register_notifiers() -> list[NotifierClass]:
    """Notifiers this plugin provides. Since 1.0.

    :returns: :class:`upkeeper.Notifier` subclasses, each with a unique ``name`` used by
        playbooks' ``notify:`` entries and a pydantic ``Params`` model.
    """


@hookspec
def upkeeper_register_template_dirs() -> list[str]:
    """Directories holding Jinja2 report templates, searched after the user's own.
    Since 1.0.

    :returns: a list of directory paths.
    """


@hookspec
def upkeeper_register_report_sections() -> list[ReportSection]:
    """Sections of the client report this plugin's checks fill. Since 1.1.

    :returns: :class:`upkeeper.ReportSection` objects: a unique ``key``, a ``title``, the
        check-name ``prefixes`` it gathers, the ``metrics`` shown per result and their
        ``formats`` (a unit name such as ``"bytes"`` or a function of the value).
    """


@hookspec
def upkeeper_register_doc_categories() -> list[DocCategoryLike]:
    """Fact categories this plugin adds to client documents (``upkeeper docs build``).
    Since 1.2.

    A plugin's check collects them: a result whose ``details["facts"]`` is a fact
    document (``schema_version`` 1, ``identity_keys``, ``sections``) is stored as a
    snapshot of the host, and its sections join the host's document.

    :returns: :class:`upkeeper.DocCategory` objects: a unique ``key`` (the section name
        in the fact document), ``title``, ``kind`` (``"fields"`` or ``"items"``), the
        item ``keys`` compared between snapshots, the ``volatile`` fields never reported
        as changes, and optionally ``rows`` drawing the document section.
    """


@hookspec
def upkeeper_register_commands() -> list[click.Command]:
    """Commands this plugin adds to the ``upkeeper`` command line. Since 1.1.

    Called only when a command that is not upkeeper's own is run or ``--help`` lists
    commands, so importing heavy modules inside the implementation costs other commands
    nothing. A name already taken (by upkeeper or another plugin) is refused and
    reported by ``upkeeper plugins``.

    :returns: :class:`click.Command` (or ``click.Group``) objects; ``name`` is the command.
    """


class FixClass(Protocol):
    """A fix class: a subclass of :class:`upkeeper.Fix`."""

    @property
    def name(self) -> str: ...

    @property
    def Params(self) -> type[BaseModel]: ...


@hookspec
def upkeeper_register_fixes() -> list[FixClass]:
    """Fixes this plugin provides, attached to checks by playbooks (``fix:``). Since 1.2.

    :returns: :class:`upkeeper.Fix` subclasses, each with a unique dotted ``name``, the
        failure signatures it ``handles`` (``upkeeper.signature(...)``), a pydantic
        ``Params`` model, and ``plan`` / ``apply`` methods (see docs/remediation.md).
    """


@hookspec
def upkeeper_run_started(run: RunRecord) -> None:
    """Called once when a run starts, before any check. Since 1.1.

    :param run: the run record (``run.run_id``, ``run.playbook``, ``run.hosts``,
        ``run.meta``, ``run.check_mode``); ``run.results`` is empty.
    """


@hookspec
def upkeeper_result(result: Result) -> None:
    """Called for each result as it lands (from worker threads; keep it quick). Since 1.0.

    :param result: the finished result, already stored in history.
    """


@hookspec
def upkeeper_run_finished(run: RunRecord) -> None:
    """Called once after a run with every result (export, tickets, metrics). Since 1.0.

    Reports and alerts of the playbook's ``report:`` and ``notify:`` are core's work and
    happen after this hook.

    :param run: the run record (``run.results``, ``run.status``, ``run.meta``,
        ``run.hosts``, ``run.unreachable``, ``run.interrupted``).
    """
