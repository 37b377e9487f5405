"""Parsing monitoring-plugin (Nagios) output: summary text and performance data."""

from __future__ import annotations

import re

_PERF_RE = re.compile(
    r"""('(?:[^']|'')+'|[^\s=']+)=(-?[\d.]+(?:[eE][-+]?\d+)?)([a-zA-Z%/]*)((?:;[^\s;]*){0,4})"""
)


def split_plugin_output(text: str) -> tuple[str, str]:
    """``(summary, perfdata)``: first line before ``|``, plus all perfdata sections."""
    lines = text.strip().splitlines()
    if not lines:
        return "", ""
    first, _, perf = lines[0].partition("|")
    perf_parts = [perf.strip()] if perf.strip() else []
    for line in lines[1:]:
        if "|" in line:
            perf_parts.append(line.split("|", 1)[1].strip())
    return first.strip(), " ".join(perf_parts)


def parse_perfdata(text: str) -> dict[str, float]:
    """``'disk /'=83%;80;90 load1=0.5`` -> ``{"disk /": 83.0, "load1": 0.5}``."""
    out: dict[str, float] = {}
    for m in _PERF_RE.finditer(text):
        label = m.group(1)
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        try:
            out[label] = float(m.group(2))
        except ValueError:
            continue
    return out
