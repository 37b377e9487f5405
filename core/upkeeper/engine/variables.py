"""A host's variables as checks and templates see them: rendered lazily, once, in the sandbox.

Inventory data is never code and is rendered only where something uses it: a var is
rendered when a param, ``when:`` or other template names it (recursively, with loop
detection), or when code reads ``host.vars[name]``. A var that cannot be rendered (an
environment variable that is not set, say) becomes a placeholder that fails only where it
is used, naming the var, the file:line that defines it and the reason; every other var,
check and host carries on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence, ValuesView
from typing import TYPE_CHECKING, Any

from upkeeper.engine.templating import (
    TemplateError,
    VarError,
    evaluate,
    is_templated,
    render_value,
)
from upkeeper.models import Host

if TYPE_CHECKING:
    from upkeeper.engine.playbook import Playbook

#: Names upkeeper defines on every host (they win over vars of the same name).
SPECIALS = ("facts", "ansible_facts", "inventory_hostname", "group_names")
OnRendered = Callable[[str, Any], None]


def broken_var(message: str, name: str, env_var: str | None = None) -> Any:
    """A stand-in for a var that could not be rendered: ``is defined`` is false,
    ``| default(x)`` gives ``x``, any other use raises :class:`VarError` with ``message``."""
    from upkeeper.engine.templating import _environment

    def fail(text: str) -> VarError:
        return VarError(text, name, env_var)

    return _environment().undefined(hint=message, name=name, exc=fail)  # type: ignore[arg-type]


class VarScope(Mapping[str, Any]):
    """Every name a template can use on one host: upkeeper's specials, then host vars,
    then playbook vars. Values are rendered on first use; ``in`` never renders."""

    def __init__(self, host: Host, raw: Mapping[str, Any], extra: Mapping[str, Any] | None = None,
                 on_rendered: OnRendered | None = None) -> None:
        self.host = host
        self._raw: dict[str, Any] = {**(extra or {}), **raw}
        self._host_names = frozenset(raw)
        self._done: dict[str, Any] = {}
        self._local = threading.local()
        self._on_rendered = on_rendered

    def describe(self, name: str) -> str:
        """``host var 'x' (inventory.yml:12)``: what and where, for error messages."""
        if name not in self._host_names:
            return f"playbook var '{name}'"
        origin = self.host.var_origin(name) if self.host.var_origin else None
        return f"host var '{name}'" + (f" ({origin})" if origin else "")

    def __contains__(self, name: object) -> bool:
        return name in SPECIALS or name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*SPECIALS, *self._raw]))

    def __len__(self) -> int:
        return len(set(SPECIALS) | self._raw.keys())

    def __getitem__(self, name: str) -> Any:
        if name in SPECIALS:
            return self._special(name)
        if name not in self._raw:
            raise KeyError(name)
        return self.resolve(name)

    def set(self, name: str, value: Any) -> None:
        """Set a var from code: a value, never rendered."""
        self._raw[name] = value
        self._done[name] = value

    def _special(self, name: str) -> Any:
        h = self.host
        if name == "inventory_hostname":
            return h.name
        if name == "group_names":
            return [g for g in h.groups if g not in ("all", "ungrouped")]
        return h.facts

    def resolve(self, name: str) -> Any:
        """The rendered value of var ``name`` (a :func:`broken_var` when it fails)."""
        if name in self._done:
            return self._done[name]
        raw = self._raw[name]
        if not is_templated(raw):
            return raw
        # Threads may render the same var at once (rendering is pure): no lock to
        # deadlock on while a template waits for facts. Loops are found per thread.
        stack: list[str] = self._local.__dict__.setdefault("stack", [])
        if name in stack:
            loop = " -> ".join([*stack[stack.index(name):], name])
            return broken_var(f"{self.describe(name)} refers to itself: {loop}", name)
        stack.append(name)
        try:
            value = render_value(raw, self)
        except VarError as exc:
            value = broken_var(str(exc), exc.variable or name, exc.env_var)
        except TemplateError as exc:
            value = broken_var(f"{self.describe(name)}: {exc}", name, exc.env_var)
        finally:
            stack.pop()
        self._done.setdefault(name, value)
        if self._on_rendered is not None:
            self._on_rendered(name, value)
        return self._done[name]


class HostVars(dict[str, Any]):
    """``host.vars`` of a host in a run: the inventory's raw values, each rendered
    through its :class:`VarScope` when read (``[]``, ``get``, ``items``, copies)."""

    def __init__(self, raw: Mapping[str, Any], scope: VarScope) -> None:
        super().__init__(raw)
        self.scope = scope

    def __getitem__(self, key: str) -> Any:
        if not dict.__contains__(self, key):
            raise KeyError(key)
        return self.scope.resolve(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if dict.__contains__(self, key) else default

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self.scope.set(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __iter__(self) -> Iterator[str]:
        # Overriding __iter__ makes dict(v) and {**v} read values through __getitem__.
        return dict.__iter__(self)

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]
        return ItemsView(self)

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        return ValuesView(self)

    def copy(self) -> dict[str, Any]:
        return dict(self.items())


def bind_host(raw: Host, extra: Mapping[str, Any] | None = None,
              on_rendered: OnRendered | None = None) -> Host:
    """A copy of ``raw`` whose ``vars`` render lazily, with ``extra`` (playbook vars)
    visible to their templates."""
    values = dict(dict.items(raw.vars))  # as written, even if ``raw`` is bound already
    host = Host(name=raw.name, vars={}, groups=list(raw.groups), facts=raw.facts,
                var_origin=raw.var_origin)
    scope = VarScope(host, values, extra, on_rendered)
    host.vars = HostVars(values, scope)
    return host


def scope_of(host: Host, extra: Mapping[str, Any] | None = None) -> VarScope:
    """The scope templates on ``host`` use (its own when bound by :func:`bind_host`)."""
    if isinstance(host.vars, HostVars):
        return host.vars.scope
    return VarScope(host, host.vars, extra)


class _FactsPlaceholder(dict[str, Any]):
    """Stands in for facts before they are gathered: any fact renders as ''."""

    def __missing__(self, key: str) -> str:
        return ""

    def __getattr__(self, key: str) -> str:
        return ""


def check_templates(playbook: Playbook, hosts: Sequence[Host]) -> tuple[list[str], list[str]]:
    """Params and ``when:`` rendered on every host before anything runs.

    :returns: (problems of the playbook itself: a variable undefined on every host;
        problems of some hosts: a var missing there, or a host var that cannot be
        rendered, such as one reading an environment variable that is not set). Facts are
        not gathered, so expressions on facts are not checked.
    """
    failures: dict[tuple[str | int, ...], list[tuple[str, TemplateError]]] = {}
    for host in hosts:
        probe = Host(name=host.name, vars=host.vars, groups=list(host.groups),
                     facts=_FactsPlaceholder(), var_origin=host.var_origin)
        scope = scope_of(bind_host(probe, playbook.vars))
        for i, spec in enumerate(playbook.checks):
            items: list[tuple[tuple[str | int, ...], Any]] = [
                (("checks", i, "params", k), v) for k, v in spec.params.items()]
            if spec.when is not None:
                items.insert(0, (("checks", i, "when"), spec.when))
            for key_path, value in items:
                try:
                    if key_path[-1] == "when" and len(key_path) == 3:
                        # Skipped on this host, so its params are never rendered there;
                        # facts are placeholders here, so a `when:` naming them decides
                        # nothing.
                        if not evaluate(str(value), scope) and "facts" not in str(value):
                            break
                    else:
                        render_value(value, scope)
                except TemplateError as exc:
                    if exc.variable is None:
                        continue  # depends on facts or values only known at run time
                    failures.setdefault(key_path, []).append((host.name, exc))
    everywhere: list[str] = []
    some: list[str] = []
    for key_path, failed in failures.items():
        spec = playbook.checks[int(key_path[1])]
        line = playbook.line_of(key_path)
        bad_playbook = len(failed) == len(hosts) and not any(
            isinstance(exc, VarError) for _, exc in failed)
        for name, error in failed:
            hint = (" (define it in host/group vars, or use '| default(...)')"
                    if error.env_var is None and not isinstance(error, VarError) else "")
            (everywhere if bad_playbook else some).append(
                f"{playbook.path}:{line}: {spec.check}: {error} for host {name}{hint}")
    return everywhere, some
