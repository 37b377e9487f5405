"""The client report as a document: a plain-words summary up top, then the details, as
self-contained HTML (inline CSS, prints to PDF with page breaks and unclipped tables) or
Markdown. Templates run in Jinja2's sandbox with autoescaping for HTML.
"""

from __future__ import annotations

import functools
import statistics
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from upkeeper.after_run.report import md_escape
from upkeeper.after_run.text import clean_text
from upkeeper.monthly.report import ClientReport
from upkeeper.monthly.timeline import Incident

__all__ = ["FORMATS", "TEMPLATE_DIR", "duration_text", "render_client_report",
           "summary_lines"]

FORMATS = ("html", "md")
TEMPLATE_DIR = Path(__file__).parent / "templates"


def duration_text(d: timedelta) -> str:
    """``3 days 4 h``, ``2 h 15 min``, ``12 min``: how long, in words a client reads."""
    minutes = int(d.total_seconds() // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {mins} min" if mins else "")
    return f"{max(mins, 1) if d.total_seconds() > 0 else 0} min"


def _pct(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    text = f"{value * 100:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _incident_line(i: Incident, until: datetime) -> str:
    return f"{i.host} {i.name} ({i.worst.value.lower()}, {duration_text(i.duration(until))})"


def summary_lines(r: ClientReport) -> list[str]:
    """The report's summary in plain sentences, most important first."""
    out = []
    checks = len(r.checks)
    out.append(f"We checked {_plural(len(r.hosts), 'system')} {r.results:,} times"
               f" ({_plural(checks, 'check')}) in {r.period.label}; checks were healthy"
               f" {_pct(r.availability)} of the time.")
    resolved, still = r.resolved_incidents, r.open_incidents
    if not r.incidents:
        out.append("There were no incidents.")
    else:
        text = f"{_plural(len(r.incidents), 'incident')}: {len(resolved)} resolved"
        if resolved:
            med = statistics.median(i.duration(r.until).total_seconds() for i in resolved)
            text += f" (typically within {duration_text(timedelta(seconds=med))})"
        if still:
            text += (f", {len(still)} {r.open_word}: "
                     + "; ".join(_incident_line(i, r.until) for i in still[:3])
                     + ("; ..." if len(still) > 3 else ""))
        out.append(text + ".")
    if r.patches:
        installed = sum(p.installed for p in r.patches)
        patched = sum(1 for p in r.patches if p.installed)
        comp = [p.compliance for p in r.patches if p.compliance is not None]
        text = (f"Patching: {_plural(installed, 'update')} installed on"
                f" {_plural(patched, 'system')}")
        if comp:
            text += (f"; systems had no security update waiting {_pct(sum(comp) / len(comp), 1)}"
                     " of the time")
        out.append(text + ".")
    if r.backups:
        verified = sum(b.verified for b in r.backups)
        vfail = sum(b.verify_failed for b in r.backups)
        restores = sum(b.restores for b in r.backups)
        rfail = sum(b.restores_failed for b in r.backups)
        out.append(f"Backups: verified {_plural(verified, 'time')}"
                   f" ({'all passed' if not vfail else f'{vfail} failed'}); "
                   f"{_plural(restores, 'test restore')}"
                   f" ({'all passed' if not rfail else f'{rfail} failed'}).")
    soon = [d for d in r.disks if d.soon]
    if soon:
        out.append("Disks: " + "; ".join(
            f"{d.host} {d.device} is forecast to be full in {d.days_to_full:.0f} days"
            for d in soon[:3]) + " (we are on it).")
    if r.fixes:
        worked = sum(f.fixed for f in r.fixes)
        failed = len(r.fixes) - worked
        text = f"{_plural(worked, 'problem')} fixed and verified"
        if failed:
            text += f"; {_plural(failed, 'fix attempt')} did not work"
        out.append(text + ".")
    if r.planned:
        first = r.planned[0]
        out.append(f"Next maintenance window: {r.period.local(first.start):%a %d %b %Y %H:%M}"
                   f" ({r.period.timezone}).")
    return out


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return clean_text(value)


@functools.lru_cache(maxsize=4)
def _environment(html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                               autoescape=html, undefined=jinja2.StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True,
                               keep_trailing_newline=True, finalize=_finalize)
    env.filters["md"] = md_escape
    env.filters["pct"] = _pct
    env.filters["dur"] = duration_text
    return env


def render_client_report(report: ClientReport, fmt: str = "html") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format '{fmt}' (use html or md)")
    env = _environment(fmt == "html")
    tz = report.period

    def local(dt: datetime | None, pattern: str = "%d %b %Y %H:%M") -> str:
        return "-" if dt is None else tz.local(dt).strftime(pattern)

    return env.get_template(f"monthly.{fmt}.j2").render(
        r=report, summary=summary_lines(report), local=local)
