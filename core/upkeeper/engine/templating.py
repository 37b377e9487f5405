"""Jinja2 rendering of params, ``when:`` and host vars: sandboxed, strict, never twice.

Inventory and playbook values such as ``"{{ restic_password }}"`` or
``"{{ env.ACME_TOKEN }}"`` are templates; everything a template produces is data. The
environment is Jinja2's immutable sandbox (no attribute starting with ``_``, no
``cycler``/``joiner``/``lipsum``/``namespace``, capped ``*``/``**``), so inventory data
cannot run code. A template that is one ``{{ expression }}`` keeps the expression's
type; nothing is ever parsed back from text (a password ``0x1F`` stays the string
``0x1F``: pydantic converts only where a param declares another type). A template sees
only the variables it names (:func:`referenced_names`), so a context can render lazily.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from upkeeper.transport.base import TransportError

if TYPE_CHECKING:
    from jinja2 import Environment, Template

_TEMPLATE_RE = re.compile(r"{{|{%")
_UNDEFINED_RE = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")
_ENV_MISSING_RE = re.compile(r"^environment variable (\S+) is not set")
#: Names a template always sees as upkeeper defines them; a var of that name is ignored.
RESERVED = frozenset({"env"})
_MAX_ITEMS = 1_000_000
_MAX_POWER_BITS = 100_000


class TemplateError(Exception):
    """A template failed to render; ``variable`` names the undefined one if known,
    ``env_var`` the environment variable that is not set."""

    def __init__(self, message: str, variable: str | None = None,
                 env_var: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable
        self.env_var = env_var


class VarError(TemplateError):
    """A variable a template uses could not be rendered itself; the message says which,
    where it is defined, and why (e.g. an environment variable that is not set)."""


class _EnvVars:
    """``env.NAME`` / ``env['NAME']`` in templates: environment variables, read when used.

    No methods, so a variable named ``keys`` or ``items`` is just a variable.
    """

    __slots__ = ()

    def __getitem__(self, key: str) -> str:
        return os.environ[key]

    def __getattr__(self, key: str) -> str:
        try:
            return os.environ[key]
        except KeyError:
            raise AttributeError(key) from None


def _concat(values: Iterable[Any]) -> Any:
    """One output node keeps its value (any type); several are joined as text. Unlike
    Jinja2's native mode nothing is ``literal_eval``-ed: ``'12345'`` stays a string."""
    it = iter(values)
    head = list(islice(it, 2))
    if not head:
        return ""
    if len(head) == 1:
        return head[0]
    return "".join(str(v) for v in chain(head, it))


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``*``/``**`` results too large to build (a template must not eat memory)."""
    if operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 \
                and abs(left) > 1 and right * left.bit_length() > _MAX_POWER_BITS:
            raise OverflowError("the result of ** is too large")
        return
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int) \
                and len(seq) * times > _MAX_ITEMS:
            raise OverflowError("the result of * is too large")


@functools.lru_cache(maxsize=1)
def _environment() -> Environment:
    """Built on first use: runs without templates never import Jinja2."""
    import jinja2
    from jinja2.nativetypes import NativeCodeGenerator
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Undefined(jinja2.StrictUndefined):
        __slots__ = ()

        @property
        def _undefined_message(self) -> str:
            if self._undefined_hint is None and isinstance(self._undefined_obj, _EnvVars):
                return f"environment variable {self._undefined_name} is not set"
            return str(super()._undefined_message)

    class CodeGenerator(NativeCodeGenerator):
        def _output_const_repr(self, group: Iterable[Any]) -> str:
            # A lone constant ({{ 22 }}) keeps its type, as a lone expression does.
            items = list(group)
            if len(items) == 1:
                return repr(items[0])
            return repr("".join(str(v) for v in items))

    class Sandbox(ImmutableSandboxedEnvironment):
        code_generator_class = CodeGenerator
        concat = staticmethod(_concat)
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

    env = Sandbox(undefined=Undefined, autoescape=False)
    for name in ("cycler", "joiner", "lipsum", "namespace"):
        env.globals.pop(name, None)
    env.globals["env"] = _EnvVars()
    return env


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> Any:
    """The syntax tree of a template (parsed once per distinct text; never modified)."""
    return _environment().parse(text)


@functools.lru_cache(maxsize=4096)
def _names(text: str) -> frozenset[str]:
    from jinja2 import meta

    return frozenset(meta.find_undeclared_variables(_parsed(text)))


@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> tuple[Template, frozenset[str]]:
    """A template and the names it looks up (compiled once per distinct text)."""
    return _environment().from_string(text), _names(text)


@functools.lru_cache(maxsize=1024)
def _compiled_expression(expression: str) -> tuple[Callable[..., Any], frozenset[str]]:
    from jinja2 import meta

    env = _environment()
    compiled = env.compile_expression(expression, undefined_to_none=False)
    names = frozenset(meta.find_undeclared_variables(env.parse(f"{{{{ ({expression}) }}}}")))
    return compiled, names


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
            str(value)  # a lone undefined value is handed back: make it raise
        return value
    except TemplateError:
        raise  # a variable the template uses failed, and its error says why
    except jinja2.UndefinedError as exc:
        text = str(exc)
        env_missing = _ENV_MISSING_RE.match(text)
        if env_missing:
            name = env_missing.group(1)
            raise TemplateError(text, f"env.{name}", name) from exc
        m = _UNDEFINED_RE.search(text)
        var = (m.group(1) or m.group(2)) if m else None
        raise TemplateError(f"undefined variable '{var or exc}'", var) from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{bad}: {exc}") from exc
    except TransportError:
        raise  # facts could not be gathered: the host is unreachable, not the template wrong
    except Exception as exc:  # e.g. a TypeError comparing a string fact with a number
        raise TemplateError(f"{failed}: {type(exc).__name__}: {exc}") from exc


def _visible(names: Iterable[str], context: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``names`` only: a lazy context renders nothing else."""
    return {n: context[n] for n in names if n not in RESERVED and n in context}


def check_syntax(text: str, expression: bool = False) -> None:
    """:raises TemplateError: ``text`` is not a valid template (or expression)."""
    if expression:
        _guarded(lambda: _compiled_expression(text), f"bad expression {text!r}",
                 f"bad expression {text!r}")
    else:
        _guarded(lambda: _compiled(text), f"template error in {text!r}",
                 f"bad template {text!r}")


def referenced_names(text: str) -> frozenset[str]:
    """Variables a template looks up (not globals such as ``env``)."""
    names: frozenset[str] = _guarded(lambda: _names(text), f"template error in {text!r}",
                                     f"bad template {text!r}")
    return names


def env_references(text: str) -> frozenset[str]:
    """Environment variables a template reads by name (``env.X`` and ``env['X']``)."""
    result: frozenset[str] = _guarded(lambda: _env_references(text),
                                      f"template error in {text!r}", f"bad template {text!r}")
    return result


@functools.lru_cache(maxsize=4096)
def _env_references(text: str) -> frozenset[str]:
    from jinja2 import nodes

    out: set[str] = set()
    for node in _parsed(text).find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "env"):
            continue
        if isinstance(node, nodes.Getattr):
            out.add(node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str):
            out.add(node.arg.value)
    return frozenset(out)


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    """Render one template string; a lone ``{{ expr }}`` keeps the value's type.

    ``context`` is asked only for the names the template uses, so it may render its
    own values lazily (see :class:`upkeeper.engine.variables.VarScope`).
    """
    def thunk() -> Any:
        template, names = _compiled(text)
        return template.render(_visible(names, context))

    return _guarded(thunk, f"template error in {text!r}", f"cannot render {text!r}")


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template string inside ``value`` (dicts and lists recursively).

    What a template produces is never rendered again.
    """
    if isinstance(value, str):
        if _is_unsafe(value) or not _TEMPLATE_RE.search(value):
            return value
        return render_string(value, context)
    if isinstance(value, Mapping):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a bare Jinja2 expression (as in ``when:``)."""
    def thunk() -> Any:
        compiled, names = _compiled_expression(expression)
        return compiled(**_visible(names, context))

    return _guarded(thunk, f"bad expression {expression!r}",
                    f"cannot evaluate {expression!r}")
