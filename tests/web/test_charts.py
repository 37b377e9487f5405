"""The SVG charts: paths from points, escaping, empty periods, one-point series, and
the status timeline."""

from __future__ import annotations

import re

from upkeeper.web.charts import MAX_POINTS, line_chart, status_timeline

DAY = 86400.0


def test_line_chart_draws_each_series_as_a_path() -> None:
    pts = [(i * DAY, float(i)) for i in range(10)]
    svg = str(line_chart("Disk used %", [("web1 /", pts), ("db1 /", pts[::2])], 0, 9 * DAY))
    paths = re.findall(r'<path class="series s(\d)" d="M([^"]+)"', svg)
    assert [p[0] for p in paths] == ["0", "1"]
    assert paths[0][1].count(" L") == 9 and paths[1][1].count(" L") == 4
    assert "web1 /" in svg and "db1 /" in svg


def test_line_chart_escapes_names() -> None:
    svg = str(line_chart("<b>t</b>", [("<script>x</script>", [(0, 1.0), (1, 2.0)])], 0, 1))
    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg


def test_empty_period_says_so() -> None:
    svg = str(line_chart("Disk", [("web1", [])], 0, DAY))
    assert "no data in this period" in svg and "<path" not in svg


def test_one_point_series_shows_a_dot() -> None:
    svg = str(line_chart("Uptime", [("up", [(DAY / 2, 3.0)])], 0, DAY))
    assert re.search(r'<circle class="dot s0" cx="[\d.]+" cy="[\d.]+"', svg)


def test_long_series_are_averaged_down() -> None:
    pts = [(float(i), float(i % 7)) for i in range(10_000)]
    svg = str(line_chart("busy", [("x", pts)], 0, 10_000))
    (d,) = re.findall(r'd="M([^"]+)"', svg)
    assert d.count(" L") < MAX_POINTS


def test_status_timeline_segments_and_a_result_of_a_moment_ago() -> None:
    events = [(0.0, "OK"), (DAY, "OK"), (2 * DAY, "CRIT"), (3 * DAY, "OK")]
    svg = str(status_timeline(events, 0, 4 * DAY))
    assert re.findall(r'class="st-(\w+)"', svg) == ["ok", "crit", "ok"]
    recent = str(status_timeline([(4 * DAY - 1, "WARN")], 0, 4 * DAY, width=360))
    (x, w) = re.findall(r'x="([\d.]+)" y="0" width="([\d.]+)"', recent)[0]
    assert float(x) + float(w) <= 360 and float(w) >= 2
