"""Small inline SVG charts for the dashboard: metric lines over time and status
timelines. Styled by classes from the package's stylesheet (no inline styles, so the
Content-Security-Policy needs no 'unsafe-inline'); text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from markupsafe import Markup, escape

#: Points drawn per series at most: a 90-day series of hourly checks is averaged down.
MAX_POINTS = 240
SERIES_CLASSES = 8


def _downsample(points: Sequence[tuple[float, float]], start: float, end: float,
                buckets: int) -> list[tuple[float, float]]:
    if len(points) <= buckets or end <= start:
        return list(points)
    width = (end - start) / buckets
    sums: dict[int, list[float]] = {}
    for ts, value in points:
        b = min(buckets - 1, max(0, int((ts - start) / width)))
        acc = sums.setdefault(b, [0.0, 0.0, 0.0])
        acc[0] += ts
        acc[1] += value
        acc[2] += 1
    return [(acc[0] / acc[2], acc[1] / acc[2]) for _, acc in sorted(sums.items())]


def _fmt(value: float) -> str:
    if abs(value) >= 1e9:
        return f"{value / 1e9:.1f}G"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.1f}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.0f}k"
    return f"{value:.3g}"


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%m-%d")


def line_chart(title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
               start: float, end: float, *, width: int = 360, height: int = 140) -> Markup:
    """One chart, one line per named series of (unix time, value) points."""
    pad_l, pad_r, pad_t, pad_b = 40, 8, 18, 18
    shown = series[:SERIES_CLASSES]
    legend_rows = (len(shown) + 2) // 3 if len(shown) > 1 else 0
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    height += legend_rows * 11
    values = [v for _, pts in shown for _, v in pts]
    label = escape(title)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{label}"><title>{label}</title>',
           f'<text class="chart-title" x="{pad_l}" y="12">{label}</text>']
    if not values:
        out.append(f'<text class="chart-empty" x="{width // 2}" y="{height // 2}" '
                   'text-anchor="middle">no data in this period</text></svg>')
        return Markup("".join(out))
    low, high = min(values), max(values)
    if high == low:
        low, high = low - 1, high + 1
    low = min(low, 0) if low >= 0 and low < high / 3 else low

    def x(ts: float) -> float:
        return pad_l + (ts - start) / (end - start or 1) * plot_w

    def y(v: float) -> float:
        return pad_t + (1 - (v - low) / (high - low)) * plot_h

    out.append(f'<rect class="chart-frame" x="{pad_l}" y="{pad_t}" width="{plot_w}" '
               f'height="{plot_h}"/>')
    for v in (low, (low + high) / 2, high):
        out.append(f'<text class="chart-axis" x="{pad_l - 3}" y="{y(v) + 3:.1f}" '
                   f'text-anchor="end">{escape(_fmt(v))}</text>')
    axis_y = pad_t + plot_h + 12
    out.append(f'<text class="chart-axis" x="{pad_l}" y="{axis_y}">{_day(start)}</text>')
    out.append(f'<text class="chart-axis" x="{width - pad_r}" y="{axis_y}" '
               f'text-anchor="end">{_day(end)}</text>')
    for i, (name, pts) in enumerate(shown):
        pts = _downsample(sorted(pts), start, end, MAX_POINTS)
        if not pts:
            continue
        d = "M" + " L".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        cls = f"series s{i % SERIES_CLASSES}"
        tip = f"{escape(name)}: last {escape(_fmt(pts[-1][1]))}"
        out.append(f'<path class="{cls}" d="{d}"><title>{tip}</title></path>')
        # The newest point, so a series of one point still shows.
        out.append(f'<circle class="dot s{i % SERIES_CLASSES}" cx="{x(pts[-1][0]):.1f}" '
                   f'cy="{y(pts[-1][1]):.1f}" r="2.5"><title>{tip}</title></circle>')
    if legend_rows:
        col_w = plot_w / 3
        for i, (name, _) in enumerate(shown):
            lx, ly = pad_l + (i % 3) * col_w, axis_y + 11 * (i // 3 + 1)
            out.append(f'<text class="legend s{i}" x="{lx:.0f}" y="{ly}">'
                       f'{escape(name[:28])}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def status_timeline(events: Sequence[tuple[float, str]], start: float, end: float, *,
                    width: int = 360, height: int = 18) -> Markup:
    """A bar coloured by status over time: each result holds until the next one."""
    out = [f'<svg class="timeline" viewBox="0 0 {width} {height}" role="img" '
           'preserveAspectRatio="none" aria-label="status over time">']
    span = end - start or 1
    shown = [(max(ts, start), status) for ts, status in events if ts <= end]
    # Keep the last event before the window: it is the status at the window's start.
    merged: list[tuple[float, str]] = []
    for ts, status in shown:
        if merged and merged[-1][1] == status:
            continue
        if merged and merged[-1][0] == ts:
            merged[-1] = (ts, status)
            continue
        merged.append((ts, status))
    for i, (ts, status) in enumerate(merged):
        nxt = merged[i + 1][0] if i + 1 < len(merged) else end
        x0 = (ts - start) / span * width
        w = max(2.0, (nxt - ts) / span * width)
        x0 = min(x0, width - w)  # a result of a moment ago still shows
        out.append(f'<rect class="st-{escape(status.lower())}" x="{x0:.1f}" y="0" '
                   f'width="{w:.1f}" height="{height}"><title>{escape(status)} from '
                   f'{_day(ts)}</title></rect>')
    out.append("</svg>")
    return Markup("".join(out))
