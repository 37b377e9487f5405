"""The dashboard's templates: a sandboxed, autoescaping Jinja2 environment over the
templates shipped in this package, and the filters the pages use."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from jinja2 import PackageLoader, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from starlette.requests import Request
from starlette.responses import HTMLResponse


def ago(ts: float | datetime | None, now: float | None = None) -> str:
    """'5 min ago', '3 h ago', '2 d ago' (or 'never')."""
    if ts is None:
        return "never"
    if isinstance(ts, datetime):
        ts = ts.timestamp()
    seconds = (now if now is not None else datetime.now(timezone.utc).timestamp()) - ts
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def when(ts: float | datetime | None) -> str:
    if ts is None:
        return ""
    if isinstance(ts, (int, float)):
        ts = datetime.fromtimestamp(ts, tz=timezone.utc)
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def num(value: Any) -> str:
    """A metric for a table cell: whole numbers without '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def pretty(data: Any) -> str:
    text = json.dumps(data, indent=1, default=str, sort_keys=True)
    return text if len(text) < 20_000 else text[:20_000] + "\n... (cut)"


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(loader=PackageLoader("upkeeper.web", "templates"),
                               autoescape=select_autoescape(default=True,
                                                            default_for_string=True),
                               trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ago=ago, when=when, pretty=pretty, num=num)
    return env


def render(request: Request, name: str, context: dict[str, Any],
           status: int = 200) -> HTMLResponse:
    """``name`` rendered with the page context plus the user and CSRF token."""
    page = environment().get_template(name).render(
        **context, user=getattr(request.state, "user", None),
        csrf=getattr(request.state, "csrf", ""), path=request.url.path)
    return HTMLResponse(page, status)
