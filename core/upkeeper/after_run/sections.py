"""Report sections and metric formatting: which section a result belongs to, which of its
metrics are shown, and how a value reads (``5.0 GiB``, ``93%``, ``26.0 h``).

Sections come from plugins (``upkeeper_register_report_sections``); core adds only the
catch-all "Other checks" and knows no plugin's checks or metrics by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from upkeeper.measures import format_size
from upkeeper.models import MetricFormatter, ReportSection

#: Results whose check no registered section claims (by fallback: its prefix matches none).
OTHER = ReportSection("other", "Other checks", ("<other>",), order=1 << 30)
MAX_METRICS = 8


def _number(value: float) -> str:
    return f"{value:g}"


def _seconds(value: float) -> str:
    if abs(value) >= 3600:
        return f"{value / 3600:.1f} h"
    if abs(value) >= 60:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


UNITS: dict[str, Callable[[float], str]] = {
    "number": _number,
    "bytes": format_size,
    "percent": lambda v: f"{v:.0f}%",
    "hours": lambda v: f"{v:.1f} h",
    "days": lambda v: f"{v:.1f} d",
    "seconds": _seconds,
    "celsius": lambda v: f"{v:.0f} °C",
    "yes_no": lambda v: "yes" if v else "no",
}


def guess_unit(name: str) -> str:
    """The unit a metric's name suggests by the common conventions (``*_bytes``,
    ``*_pct``, ``*_hours``, ``*_days``, ``*_seconds``, ``*_ok``), else ``number``."""
    if name.endswith("bytes"):
        return "bytes"
    if name.endswith("pct"):
        return "percent"
    if name.endswith("hours"):
        return "hours"
    if name.endswith("days"):
        return "days"
    if name.endswith(("seconds", "_s")):
        return "seconds"
    if name.endswith("_ok"):
        return "yes_no"
    return "number"


def format_metric(name: str, value: float, section: ReportSection | None = None) -> str:
    """Human form of a metric value: as its section declares it, else guessed by name."""
    fmt: str | MetricFormatter | None = section.format_of(name) if section else None
    if fmt is None:
        fmt = guess_unit(name)
    if isinstance(fmt, str):
        return UNITS[fmt](value)
    try:
        return str(fmt(value))
    except Exception:  # a plugin's formatter must not break a report
        return _number(value)


def section_of(check: str, sections: Sequence[ReportSection]) -> ReportSection:
    """The first section (in display order) whose prefixes match ``check``, else OTHER."""
    for sec in sections:
        if sec.matches(check):
            return sec
    return OTHER


def with_other(sections: Sequence[ReportSection]) -> list[ReportSection]:
    """Registered sections in display order, then "Other checks"."""
    return [*sorted(sections, key=lambda s: (s.order, s.title)), OTHER]


def pick_metrics(section: ReportSection, metrics: Mapping[str, float]) -> list[str]:
    """The metrics a section shows for a result, in the section's preferred order;
    per-device names (``/var:used_pct``) are grouped by device."""
    if not section.metrics:
        return sorted(metrics)[:MAX_METRICS]
    exact = [m for m in section.metrics if not m.startswith("*") and m in metrics]
    suffixes = [m[1:] for m in section.metrics if m.startswith("*")]
    ranked = sorted(((name[:-len(suf)], i, name) for name in metrics
                     for i, suf in enumerate(suffixes) if name.endswith(suf)))
    per_device = list(dict.fromkeys(name for _, _, name in ranked))
    return [*exact, *per_device][:MAX_METRICS]
