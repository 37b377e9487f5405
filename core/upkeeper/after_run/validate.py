"""Checks of a playbook's ``notify:`` and ``report:`` before anything runs, as
``file:line: message``: shapes, notifiers that exist, params that fit them, and with an
inventory, notify params rendered for every host (a ``to:`` from an undefined host var
is found by ``validate``, not by a missing alert weeks later).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from upkeeper.engine.templating import is_templated
from upkeeper.engine.variables import bind_host
from upkeeper.models import Host, RunRecord

# The notify and report models are imported only for playbooks that have those sections
# (building pydantic models costs every run's start-up).
if TYPE_CHECKING:
    from upkeeper.engine.playbook import Playbook
    from upkeeper.registry import Registry


def validate_notify(pb: Playbook, registry: Registry) -> list[str]:
    """Problems in ``pb.notify`` (empty when valid): each channel's notifier must be
    registered (a disabled or broken plugin is named) and its literal params must fit
    the notifier's model."""
    raw = pb.notify
    if raw is None:
        return []
    from upkeeper.after_run.notify_config import NotifyConfig, normalise_notify
    from upkeeper.after_run.report_config import at, describe
    from upkeeper.registry import UnknownNameError

    try:
        data = normalise_notify(raw)
    except ValueError as exc:
        return [at(pb, ("notify",), f"notify: {exc}")]
    try:
        cfg = NotifyConfig.model_validate(data)
    except ValidationError as exc:
        return [at(pb, _raw_loc(data, tuple(e["loc"])), f"notify: {describe(e)}")
                for e in exc.errors()]
    problems: list[str] = []
    for chan in cfg.channels:
        try:
            cls = registry.notifier(chan.notifier)
        except UnknownNameError as exc:
            problems.append(at(pb, chan.source_path, f"notify: {exc}"))
            continue
        try:
            cls.Params.model_validate(chan.params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                if loc and is_templated(chan.params.get(str(loc[0]))):
                    continue  # rendered per host: see notify_preflight
                problems.append(at(pb, (*chan.source_path, *loc),
                                   f"notify: {chan.notifier}: {describe(err)}"))
    return problems


def preflight(pb: Playbook, hosts: Sequence[Host], registry: Registry) -> list[str]:
    """Everything found per host before a run: undefined variables in check params and
    ``when:`` (the engine's preflight), and notify settings that do not render or fit."""
    from upkeeper.engine.preflight import preflight as check_preflight

    return [*check_preflight(pb, hosts), *notify_preflight(pb, hosts, registry)]


def notify_preflight(pb: Playbook, hosts: Sequence[Host], registry: Registry) -> list[str]:
    """Each channel's params rendered for every host and checked against the notifier.

    Run after :func:`validate_notify` passed; hosts whose own vars do not render are
    left to the runner's preflight, which reports them.
    """
    if pb.notify is None:
        return []
    from upkeeper.after_run.notify_config import parse_notify
    from upkeeper.after_run.report_config import at, describe
    from upkeeper.after_run.targets import ParamError, host_context, render_params

    try:
        cfg = parse_notify(pb.notify)
    except (ValidationError, ValueError):
        return []
    if cfg is None:
        return []
    problems: list[str] = []
    for host in hosts:
        context = host_context(pb.vars, bind_host(host, pb.vars))
        for chan in cfg.channels:
            if chan.notifier not in registry.notifiers:
                continue  # validate_notify said so
            cls = registry.notifiers[chan.notifier]
            try:
                cls.Params.model_validate(render_params(chan, context))
            except ParamError as exc:
                hint = (" (define it in host/group vars, or use '| default(...)')"
                        if exc.variable else "")
                problems.append(at(pb, (*chan.source_path, exc.param),
                                   f"notify: {chan.notifier}: {exc} for host {host.name}{hint}"))
            except ValidationError as exc:
                for err in exc.errors():
                    problems.append(at(pb, (*chan.source_path, *tuple(err["loc"])[:1]),
                                       f"notify: {chan.notifier}: {describe(err)} "
                                       f"for host {host.name}"))
    return problems


def _raw_loc(data: Mapping[str, Any], loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """A pydantic error location inside the normalised data -> the playbook key path."""
    if len(loc) >= 2 and loc[0] == "channels" and isinstance(loc[1], int):
        chans = data.get("channels") or []
        if loc[1] < len(chans) and isinstance(chans[loc[1]], Mapping):
            base = tuple(chans[loc[1]].get("source_path", ()))
            rest = loc[3:] if len(loc) > 2 and loc[2] == "params" else loc[2:]
            return (*base, *rest)
    return ("notify", *loc)


def validate_report(pb: Playbook) -> list[str]:
    """Problems in ``pb.report`` as ``file:line: message`` strings (empty when valid)."""
    raw = pb.report
    if raw is None:
        return []  # before importing Jinja2: most runs write no report
    import jinja2

    from upkeeper.after_run.report import environment, output_path, template_file
    from upkeeper.after_run.report_config import ReportConfig, ReportError, at, describe

    items = raw if isinstance(raw, list) else [raw]
    problems: list[str] = []
    for i, item in enumerate(items):
        where: tuple[str | int, ...] = ("report", i) if isinstance(raw, list) else ("report",)
        if not isinstance(item, Mapping):
            problems.append(at(pb, where, "report: each entry is a mapping with template, "
                                          f"format and path, not {type(item).__name__}"))
            continue
        try:
            cfg = ReportConfig.model_validate(item)
        except ValidationError as exc:
            problems += [at(pb, (*where, *tuple(e["loc"])), f"report: {describe(e)}")
                         for e in exc.errors()]
            continue
        if cfg.template_dir is None:
            try:
                environment(cfg.format).get_template(template_file(cfg.template, cfg.format))
            except jinja2.TemplateNotFound:
                problems.append(at(pb, (*where, "template"),
                                   f"report: no built-in template '{cfg.template}' for "
                                   f"{cfg.format} (built-ins: client, summary)"))
        try:
            output_path(cfg.path, run=RunRecord("r", "p"), client="c")
        except ReportError as exc:
            problems.append(at(pb, (*where, "path"), str(exc)))
    return problems
