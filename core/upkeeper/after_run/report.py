"""Reports from run history: Jinja2 (HTML autoescaped, Markdown), per-client grouping and
inline SVG sparklines, with templates looked up in the user's, plugins' and built-in dirs.

Which results go in which section, and how metrics read, comes from the sections plugins
register (:mod:`upkeeper.after_run.sections`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from upkeeper.after_run.clients import CLIENT_STATE, remember_clients
from upkeeper.after_run.report_config import ReportConfig, ReportError
from upkeeper.after_run.sections import format_metric, pick_metrics, section_of, with_other
from upkeeper.after_run.text import clean_text
from upkeeper.models import Host, ReportSection, Result, RunRecord, Status

if TYPE_CHECKING:
    import jinja2

    from upkeeper.store.history import History

__all__ = ["ReportConfig", "ReportError", "remember_clients", "render_report",
           "write_reports"]

BUILTIN_DIR = Path(__file__).parent / "templates"
FORMATS = ("html", "md")
NO_CLIENT = "(no client)"
TREND_DAYS = 30
_SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
#: Client names -> each client's documentation summary (``after_run.asbuilt_step``).
DocsSource = Callable[[list[str]], Mapping[str, Any]]


@dataclass
class MetricView:
    """One metric of one result, formatted, with its trend."""

    name: str
    value: float
    display: str
    trend: list[float]
    spark: Markup
    spark_text: str


@dataclass
class Row:
    result: Result
    section: str
    metrics: list[MetricView] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.result.status.value


class _Rows:
    """A group of result rows whose status is its worst row's."""

    rows: list[Row]

    @property
    def status(self) -> str:
        return Status.worst(r.result.status for r in self.rows).value


@dataclass
class SectionView(_Rows):
    key: str
    title: str
    rows: list[Row]


@dataclass
class HostView(_Rows):
    name: str
    client: str
    rows: list[Row]


@dataclass
class ClientView:
    name: str
    hosts: list[HostView]
    sections: list[SectionView]
    #: Fixes verified in this run ("fixed for you"), from the remediation audit trail.
    fixed: list[Any] = field(default_factory=list)

    @property
    def status(self) -> str:
        return Status.worst(Status(h.status) for h in self.hosts).value

    @property
    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for h in self.hosts:
            for r in h.rows:
                out[r.status] += 1
        return out


def sparkline_svg(values: Sequence[float], width: int = 120, height: int = 24,
                  label: str = "") -> Markup:
    """An inline SVG polyline of ``values`` (oldest first); empty for fewer than 2 points.

    Only numbers go into the markup, so it is safe to mark it as such; the label is escaped.
    """
    if len(values) < 2:
        return Markup("")
    lo, hi = min(values), max(values)
    pad = 2.0
    step = (width - 2 * pad) / (len(values) - 1)
    if hi == lo:
        pts = [(pad + i * step, height / 2) for i in range(len(values))]
    else:
        pts = [(pad + i * step, height - pad - (v - lo) / (hi - lo) * (height - 2 * pad))
               for i, v in enumerate(values)]
    poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    lx, ly = pts[-1]
    title = Markup.escape(label or f"min {lo:g}, max {hi:g}, last {values[-1]:g}")
    return Markup(
        f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{poly}"/>'
        f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="2" fill="currentColor"/></svg>'
    )


def sparkline_text(values: Sequence[float]) -> str:
    """Unicode block sparkline for Markdown and plain text."""
    if len(values) < 2:
        return ""
    lo, hi = min(values), max(values)
    top = len(_SPARK_BLOCKS) - 1
    if hi == lo:
        return _SPARK_BLOCKS[top // 2] * len(values)
    span = hi - lo
    return "".join(_SPARK_BLOCKS[round((v - lo) / span * top)] for v in values)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>#])")


def md_escape(value: Any) -> str:
    """Escape text for a Markdown table cell: no markup, no HTML, no control characters,
    one line."""
    text = clean_text(value, single_line=True)
    return _MD_SPECIAL.sub(lambda m: "&lt;" if m.group(1) == "<" else
                           "&gt;" if m.group(1) == ">" else "\\" + m.group(1), text)


def search_path(template_dir: str | Path | None = None,
                plugin_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """Where templates are looked up, first match wins."""
    dirs = [Path(template_dir)] if template_dir else []
    dirs += [Path(d) for d in plugin_dirs]
    return [*dirs, BUILTIN_DIR]


def environment(fmt: str, template_dir: str | Path | None = None,
                plugin_dirs: Iterable[str | Path] = ()) -> jinja2.Environment:
    """A Jinja2 environment for ``fmt`` (html autoescapes; md and txt do not).

    Built-ins stay reachable as ``builtin/NAME`` so an override can extend the original.
    Environments are shared per search path, so compiled templates are reused (Jinja2
    still reloads a template whose file changed).
    """
    dirs = tuple(str(p) for p in search_path(template_dir, plugin_dirs))
    return _environment(fmt == "html", dirs)


def _finalize(value: Any) -> Any:
    """Every printed expression loses control characters and escape sequences (markup the
    templates build themselves, such as sparklines, is kept as it is)."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return clean_text(value)


@functools.lru_cache(maxsize=32)
def _environment(autoescape: bool, dirs: tuple[str, ...]) -> jinja2.Environment:
    import jinja2

    loader = jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(list(dirs)),
        jinja2.PrefixLoader({"builtin": jinja2.FileSystemLoader(str(BUILTIN_DIR))}),
    ])
    env = jinja2.Environment(loader=loader, autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True,
                             finalize=_finalize)
    env.filters["md"] = md_escape
    env.filters["metric"] = lambda v, name="": format_metric(name, v)
    env.globals["sparkline"] = sparkline_svg
    return env


def template_file(name: str, fmt: str) -> str:
    """``client`` + ``html`` -> ``client.html.j2``; a name with a suffix is used as is."""
    if fmt not in FORMATS and fmt != "txt":
        raise ReportError(f"unknown report format '{fmt}' (use html or md)")
    return name if "." in Path(name).name else f"{name}.{fmt}.j2"


def client_of(host: Host | None, fallback: str | None = None) -> str:
    if host is not None:
        value = host.vars.get("client")
        if value:
            return str(value)
    return fallback or NO_CLIENT


def clients_for_run(run: RunRecord, history: History | None) -> dict[str, str]:
    """Host -> client, from the run's hosts, else ``meta["clients"]``, else history state."""
    stored = run.meta.get("clients")
    meta: dict[str, Any] = stored if isinstance(stored, dict) else {}
    out: dict[str, str] = {}
    for host in dict.fromkeys(r.host for r in run.results):
        remembered = meta.get(host)
        if remembered is None and history is not None and host not in run.hosts:
            remembered = history.get_state(host, CLIENT_STATE[0], CLIENT_STATE[1])
        out[host] = client_of(run.hosts.get(host), remembered)
    return out


def build_row(result: Result, history: History | None, trend_days: int,
              sections: Sequence[ReportSection] = ()) -> Row:
    """A result with its key metrics and their trend up to the result itself, so a report
    of an old run shows the history as it was then."""
    sec = section_of(result.check, sections)
    row = Row(result, sec.key)
    since = result.started - timedelta(days=trend_days)
    for name in pick_metrics(sec, result.metrics):
        value = float(result.metrics[name])
        trend: list[float] = []
        if history is not None:
            trend = [v for _, v in history.series(result.host, name, check=result.check,
                                                  since=since, until=result.started)][-60:]
        label = f"{name}: min {min(trend or [value]):g}, max {max(trend or [value]):g}"
        row.metrics.append(MetricView(name, value, format_metric(name, value, sec), trend,
                                      sparkline_svg(trend, label=label), sparkline_text(trend)))
    return row


def build_clients(run: RunRecord, history: History | None, *, client: str | None = None,
                  trend_days: int = TREND_DAYS,
                  sections: Sequence[ReportSection] = ()) -> list[ClientView]:
    """The run's results grouped client -> host -> rows, and client -> section -> rows.

    ``sections`` are the registered report sections; "Other checks" gathers the rest.
    """
    shown = with_other(sections)
    clients = clients_for_run(run, history)
    hosts: dict[str, HostView] = {}
    for result in run.results:
        cname = clients.get(result.host, NO_CLIENT)
        if client is not None and cname != client:
            continue
        view = hosts.setdefault(result.host, HostView(result.host, cname, []))
        view.rows.append(build_row(result, history, trend_days, shown))
    out: list[ClientView] = []
    for cname in sorted({h.client for h in hosts.values()}, key=lambda c: (c == NO_CLIENT, c)):
        members = [h for h in hosts.values() if h.client == cname]
        views = [SectionView(sec.key, sec.title,
                             [r for h in members for r in h.rows if r.section == sec.key])
                 for sec in shown]
        out.append(ClientView(cname, members, views, _fixed(run, history, members)))
    return out


def _fixed(run: RunRecord, history: History | None, hosts: list[HostView]) -> list[Any]:
    if history is None or not run.meta.get("remediation"):
        return []
    from upkeeper.remediation.report import fixed_for

    return fixed_for(history, [h.name for h in hosts], run_id=run.run_id)


def render_report(run: RunRecord, history: History | None, *, template: str = "client",
                  fmt: str = "html", client: str | None = None,
                  template_dir: str | Path | None = None,
                  plugin_dirs: Iterable[str | Path] = (), now: datetime | None = None,
                  trend_days: int = TREND_DAYS,
                  sections: Sequence[ReportSection] = (),
                  docs: DocsSource | None = None) -> str:
    """Render one report of ``run``; raises :class:`ReportError` for a missing template.

    ``sections`` are the registered report sections (``registry.report_sections``);
    ``docs`` gives the ``docs`` section (client documentation) of the clients shown.
    """
    import jinja2

    env = environment(fmt, template_dir, plugin_dirs)
    name = template_file(template, fmt)
    try:
        tpl = env.get_template(name)
    except jinja2.TemplateNotFound:
        dirs = ", ".join(str(p) for p in search_path(template_dir, plugin_dirs))
        raise ReportError(f"template '{name}' not found in {dirs}") from None
    now = now or datetime.now(timezone.utc)
    clients = build_clients(run, history, client=client, trend_days=trend_days,
                            sections=sections)
    if client is not None and not clients:
        raise ReportError(f"no results for client '{client}' in run {run.run_id}")
    try:
        return tpl.render(run=run, clients=clients, generated=now, client=client,
                          counts=run.counts(), trend_days=trend_days, Status=Status,
                          docs=docs([c.name for c in clients]) if docs else {})
    except jinja2.TemplateError as exc:
        raise ReportError(f"template '{name}': {exc}") from exc


def output_path(pattern: str, *, run: RunRecord, client: str | None,
                base: Path | None = None) -> Path:
    """Fill ``{client}``, ``{date}``, ``{run_id}``, ``{playbook}`` into a report path."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"

    started = run.started.astimezone(timezone.utc)
    try:
        filled = pattern.format(client=safe(client or "all"), date=f"{started:%Y-%m-%d}",
                                run_id=safe(run.run_id), playbook=safe(run.playbook))
    except (KeyError, IndexError, ValueError) as exc:
        raise ReportError(f"report path {pattern!r}: unknown placeholder {exc}") from None
    path = Path(filled).expanduser()
    return path if path.is_absolute() or base is None else base / path


def write_reports(run: RunRecord, history: History | None, config: ReportConfig, *,
                  plugin_dirs: Iterable[str | Path] = (), base: Path | None = None,
                  now: datetime | None = None,
                  sections: Sequence[ReportSection] = (),
                  docs: DocsSource | None = None) -> list[Path]:
    """Write the report(s) one ``report:`` entry asks for; one per client with {client}."""
    plugin_dirs = list(plugin_dirs)
    tdir = Path(config.template_dir).expanduser() if config.template_dir else None
    if tdir is not None and not tdir.is_absolute() and base is not None:
        tdir = base / tdir
    if "{client}" in config.path and config.client is None:
        targets: list[str | None] = [*sorted(set(clients_for_run(run, history).values()))]
    else:
        targets = [config.client]
    written: list[Path] = []
    for client in targets:
        text = render_report(run, history, template=config.template, fmt=config.format,
                             client=client, template_dir=tdir, plugin_dirs=plugin_dirs,
                             now=now, trend_days=config.trend_days, sections=sections,
                             docs=docs)
        path = output_path(config.path, run=run, client=client, base=base)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # readers never see half a report
        written.append(path)
    return written
