"""Jinja2 rendering of host vars and check params (StrictUndefined, native types).

Values such as ``"{{ restic_password }}"`` or ``"{{ env.ACME_TOKEN }}"`` are rendered per
host; an undefined variable is an error that names it. ``env`` exposes environment
variables so inventories need not hold secrets.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from upkeeper.transport.base import TransportError

if TYPE_CHECKING:
    from jinja2.nativetypes import NativeEnvironment

_TEMPLATE_RE = re.compile(r"{{|{%")
_UNDEFINED_RE = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")
_MAX_PASSES = 5


class TemplateError(Exception):
    """A template failed to render; ``variable`` names the undefined one if known."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class _EnvVars(Mapping[str, str]):
    """``env.NAME`` in templates: environment variables, read when used."""

    def __getitem__(self, key: str) -> str:
        return os.environ[key]

    def __iter__(self) -> Any:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


@functools.lru_cache(maxsize=1)
def _environment() -> NativeEnvironment:
    """Built on first use: runs without templates never import Jinja2."""
    import jinja2
    from jinja2.nativetypes import NativeEnvironment

    env = NativeEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.globals["env"] = _EnvVars()
    return env


def _is_unsafe(value: str) -> bool:
    """Values tagged ``!unsafe`` in inventories are never templated (as in Ansible)."""
    return bool(getattr(value, "__UNSAFE__", False))


def is_templated(value: Any) -> bool:
    """True when ``value`` (or anything nested in it) contains a Jinja2 template."""
    if isinstance(value, str):
        return not _is_unsafe(value) and bool(_TEMPLATE_RE.search(value))
    if isinstance(value, Mapping):
        return any(is_templated(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_templated(v) for v in value)
    return False


def _guarded(thunk: Callable[[], Any], bad: str, failed: str) -> Any:
    """Run a Jinja2 call, turning every way it can fail into :class:`TemplateError`."""
    import jinja2

    try:
        value = thunk()
        if isinstance(value, jinja2.Undefined):
            str(value)  # native rendering hands back the Undefined: make it raise
        return value
    except jinja2.UndefinedError as exc:
        m = _UNDEFINED_RE.search(str(exc))
        var = (m.group(1) or m.group(2)) if m else None
        raise TemplateError(f"undefined variable '{var or exc}'", var) from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{bad}: {exc}") from exc
    except TransportError:
        raise  # facts could not be gathered: the host is unreachable, not the template wrong
    except Exception as exc:  # e.g. a TypeError comparing a string fact with a number
        raise TemplateError(f"{failed}: {type(exc).__name__}: {exc}") from exc


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    """Render one template string; a lone ``{{ expr }}`` keeps the value's native type."""
    return _guarded(lambda: _environment().from_string(text).render(dict(context)),
                    f"template error in {text!r}", f"cannot render {text!r}")


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template string inside ``value`` (dicts and lists recursively)."""
    if isinstance(value, str):
        if _is_unsafe(value) or not _TEMPLATE_RE.search(value):
            return value
        return render_string(value, context)
    if isinstance(value, Mapping):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def render_host_vars(hostvars: Mapping[str, Any],
                     extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Render host vars that refer to other vars or ``env``, a few passes deep."""
    out = dict(hostvars)
    for _ in range(_MAX_PASSES):
        pending = [k for k, v in out.items() if is_templated(v)]
        if not pending:
            return out
        context = {**(extra or {}), **out}
        for key in pending:
            try:
                out[key] = render_value(out[key], context)
            except TemplateError as exc:
                raise TemplateError(f"host var '{key}': {exc}", exc.variable) from exc
    leftover = [k for k, v in out.items() if is_templated(v)]
    if leftover:
        raise TemplateError(f"host vars refer to each other in a loop: {', '.join(leftover)}")
    return out


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a bare Jinja2 expression (as in ``when:``)."""
    return _guarded(
        lambda: _environment().compile_expression(expression,
                                                  undefined_to_none=False)(**dict(context)),
        f"bad expression {expression!r}", f"cannot evaluate {expression!r}")
