"""What core does after every run (``upkeeper run`` and ``upkeeper serve``), whichever
plugins are loaded: remember each host's client, write the playbook's ``report:``, send
its ``notify:`` alerts, record every delivery, and save the outcome on the run.

Nothing here may fail a run: problems are logged and recorded in ``run.meta``
(``reports``, ``notifications``, ``notify_errors``), which is saved back to history.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import ValidationError

from upkeeper.after_run import ledger
from upkeeper.after_run.asbuilt_step import docs_source, ingest_facts, run_has_facts
from upkeeper.after_run.clients import remember_clients
from upkeeper.after_run.context import RunContext
from upkeeper.models import RunRecord

if TYPE_CHECKING:
    from upkeeper.after_run.delivery import Delivery

log = logging.getLogger("upkeeper.after_run")


def after_run(run: RunRecord, ctx: RunContext) -> None:
    """Reports, alerts and their record for ``run``; never raises."""
    pb = ctx.playbook
    _remember(run, ctx)
    if pb.notify is None and pb.report is None:
        return
    errors: list[str] = []
    if pb.report is not None:
        run.meta["reports"] = write_playbook_reports(run, ctx, errors)
    if pb.notify is not None:
        if run.interrupted:
            # What an interrupted run did not finish is not news; the next run tells.
            run.meta["notify_skipped"] = "run interrupted"
            log.info("run %s was interrupted: no alerts sent", run.run_id)
        else:
            deliveries = send_alerts(run, ctx, errors)
            run.meta["notifications"] = [d.to_dict() for d in deliveries]
            try:
                ledger.record(ctx.history, run.run_id, deliveries, ctx.now)
            except Exception as exc:  # a full disk must not hide the run's own outcome
                errors.append(f"recording deliveries failed: {exc}")
                log.error("%s", errors[-1])
    if errors:
        run.meta.setdefault("notify_errors", []).extend(errors)
    try:
        ctx.history.finish_run(run)  # saves the updated meta with the run
    except Exception as exc:
        log.error("saving the after-run outcome of run %s failed: %s", run.run_id, exc)


def _remember(run: RunRecord, ctx: RunContext) -> None:
    try:
        remember_clients(run, ctx.history)
    except Exception as exc:
        log.error("remembering the clients of run %s failed: %s", run.run_id, exc)
    if run_has_facts(run):
        try:
            ingest_facts(ctx.history)
        except Exception as exc:  # documents can be built later from the stored results
            log.error("snapshotting the facts of run %s failed: %s", run.run_id, exc)


def write_playbook_reports(run: RunRecord, ctx: RunContext, errors: list[str]) -> list[str]:
    """Write the playbook's ``report:`` entries; returns the paths written."""
    import jinja2

    from upkeeper.after_run.report import write_reports
    from upkeeper.after_run.report_config import ReportError, parse_report

    try:
        configs = parse_report(ctx.playbook.report)
    except (ValidationError, ValueError) as exc:
        errors.append(f"{ctx.playbook.path}: report: {exc}")
        log.error("%s", errors[-1])
        return []
    written: list[str] = []
    for cfg in configs:
        try:
            paths = write_reports(run, ctx.history, cfg, plugin_dirs=ctx.template_dirs,
                                  base=ctx.base_dir, now=ctx.now,
                                  sections=ctx.plugins.registry.report_sections,
                                  docs=docs_source(ctx.history, ctx.plugins))
        except (ReportError, OSError, jinja2.TemplateError) as exc:
            errors.append(f"report {cfg.template} -> {cfg.path}: {exc}")
            log.error("%s", errors[-1])
            continue
        written += [str(p) for p in paths]
        for p in paths:
            log.info("report written: %s", p)
    return written


def send_alerts(run: RunRecord, ctx: RunContext, errors: list[str]) -> list[Delivery]:
    """Alerts the playbook's ``notify:`` asks for; returns every delivery."""
    from upkeeper.after_run.delivery import notify
    from upkeeper.after_run.notify_config import parse_notify

    try:
        cfg = parse_notify(ctx.playbook.notify)
    except (ValidationError, ValueError) as exc:
        errors.append(f"{ctx.playbook.path}: notify: {exc}")
        log.error("%s", errors[-1])
        return []
    if cfg is None:
        return []
    return notify(run, cfg, ctx)
