"""Ansible-compatible inventories: INI, YAML and directory sources, group_vars/ and
host_vars/, Ansible's variable precedence, host patterns and ``ansible-inventory --list``."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from upkeeper.inventory.data import Group, InventoryData
from upkeeper.inventory.patterns import (
    LOCALHOST,
    HostPatternError,
    InventoryError,
    PatternMatcher,
)
from upkeeper.inventory.sources import parse_source
from upkeeper.inventory.yamlfile import (
    YAML_EXTS,
    UnsafeText,
    VarsFiles,
    VaultedValue,
)
from upkeeper.models import Host
from upkeeper.yamlsource import SourceError
from upkeeper.yamlsource import read_text as read_bounded

__all__ = [
    "Group",
    "HostPatternError",
    "Inventory",
    "InventoryError",
    "load_inventory",
    "local_inventory",
]

#: Names ``ansible-inventory --list`` never prints as host vars (Ansible's magic vars).
INTERNAL_VARS = frozenset({
    "ansible_async_path", "ansible_collection_name", "ansible_config_file",
    "ansible_dependent_role_names", "ansible_diff_mode", "ansible_facts", "ansible_forks",
    "ansible_inventory_sources", "ansible_limit", "ansible_play_batch", "ansible_play_hosts",
    "ansible_play_hosts_all", "ansible_play_role_names", "ansible_playbook_python",
    "ansible_role_name", "ansible_role_names", "ansible_run_tags", "ansible_skip_tags",
    "ansible_verbosity", "ansible_version", "inventory_dir", "inventory_file",
    "inventory_hostname", "inventory_hostname_short", "groups", "group_names", "hostvars",
    "playbook_dir", "play_hosts", "role_name", "role_names", "role_path", "role_uuid",
})


class Inventory:
    """A loaded inventory: hosts with merged vars, groups, host-pattern selection."""

    def __init__(self, data: InventoryData, vars_dirs: Sequence[Path] = ()) -> None:
        self._data = data
        self._vars = VarsFiles(vars_dirs, data.warnings)
        self.groups: dict[str, Group] = data.groups
        self.warnings: list[str] = data.warnings
        self._ancestors = {g: data.ancestors(g) for g in data.groups}
        self._direct: dict[str, list[str]] = {}
        for group in data.groups.values():
            for host in group.hosts:
                self._direct.setdefault(host, []).append(group.name)
        self.hosts: dict[str, Host] = {
            name: self._make_host(name, own) for name, own in data.host_vars.items()}
        self._warn_unused_vars_files()
        self._members = {name: self._group_hosts(name) for name in self.groups}

    def _host_groups(self, name: str) -> list[Group]:
        names: set[str] = set()
        for g in self._direct.get(name, ()):
            names.add(g)
            names.update(self._ancestors[g])
        return sort_groups(self.groups[n] for n in names)

    def _make_host(self, name: str, own: Mapping[str, Any]) -> Host:
        groups = self._host_groups(name)
        # Ansible's VARIABLE_PRECEDENCE: inventory all < inventory groups < group_vars/all
        # < group_vars/<group> < inventory host vars < host_vars/<host>.
        merged: dict[str, Any] = dict(self.groups["all"].vars)
        for g in groups:
            if g.name != "all":
                merged.update(g.vars)
        merged.update(self._vars.group("all"))
        for vars_dir in self._vars.dirs:
            for g in groups:
                if g.name != "all":
                    merged.update(self._vars.group(g.name, vars_dir))
        merged.update(own)
        merged.update(self._vars.host(name))
        names = [g.name for g in groups] if groups else ["all"]
        return Host(name=name, vars=merged, groups=names,
                    var_origin=functools.partial(self.var_source, name))

    def _group_hosts(self, name: str) -> list[str]:
        """Hosts of a group and of every group below it: own hosts, then level by level."""
        seen: list[str] = [name]
        level = [name]
        while level:
            nxt: list[str] = []
            for g in level:
                for child in self.groups[g].children:
                    if child not in seen:
                        seen.append(child)
                        nxt.append(child)
            level = nxt
        return list(dict.fromkeys(h for g in seen for h in self.groups[g].hosts))

    def _warn_unused_vars_files(self) -> None:
        for vars_dir in self._vars.dirs:
            for kind, known in (("group_vars", self.groups), ("host_vars", self.hosts)):
                base = vars_dir / kind
                if not base.is_dir():
                    continue
                for entry in sorted(base.iterdir()):
                    stem = entry.name
                    if entry.suffix in YAML_EXTS:
                        stem = stem[: -len(entry.suffix)]
                    if not stem.startswith(".") and stem not in known:
                        self.warnings.append(f"{entry}: no {kind.split('_')[0]} named "
                                             f"{stem!r} in the inventory; file ignored")

    def var_source(self, host: str, key: str) -> str | None:
        """Where the value of ``key`` on ``host`` was set (``file:line`` or a file): the
        source that wins, walking :meth:`_make_host`'s precedence from the top."""
        dirs = self._vars.dirs
        found = self._vars.source("host_vars", host, key, dirs)
        if found or key in self._data.host_vars.get(host, {}):
            return found or self._data.origins.get(("host", host, key), "inventory")
        groups = [g for g in reversed(self._host_groups(host)) if g.name != "all"]
        for vars_dir in reversed(dirs):
            for g in groups:
                found = self._vars.source("group_vars", g.name, key, [vars_dir])
                if found:
                    return found
        found = self._vars.source("group_vars", "all", key, dirs)
        if found:
            return found
        for g in [*groups, self.groups["all"]]:
            if key in g.vars:
                return self._data.origins.get(("group", g.name, key), "inventory")
        return None

    def matcher(self) -> PatternMatcher:
        return PatternMatcher(self._members, list(self.hosts))

    def select(self, pattern: str | None) -> list[Host]:
        """Hosts matching an Ansible host pattern, in inventory order of evaluation.

        ``None``, ``all`` and ``*`` select every host. ``localhost`` selects an implicit
        local host when the inventory has none, as in Ansible.
        """
        names = self.matcher().select(pattern or "all", read_file=_read_limit_file)
        hosts: dict[str, Host] = {}
        for n in names:
            host = self.hosts[n] if n in self.hosts else self.implicit_localhost(n)
            hosts.setdefault(host.name, host)
        return list(hosts.values())

    def unmatched(self, pattern: str) -> list[str]:
        """The parts of ``pattern`` that match no host or group (Ansible warns on them)."""
        matcher = self.matcher()
        matcher.select(pattern, read_file=_read_limit_file)
        return matcher.unmatched

    def implicit_localhost(self, name: str = "localhost") -> Host:
        """The host ``localhost``/``127.0.0.1``/``::1`` stand for: the first such host in the
        inventory, else one made up with the local connection (as Ansible does)."""
        if name not in LOCALHOST:
            raise KeyError(name)
        for known in self.hosts.values():
            if known.name in LOCALHOST:
                return known
        return self._make_host(name, {"ansible_connection": "local"})

    def to_ansible_list(self, limit: str | None = None) -> dict[str, Any]:
        """The document ``ansible-inventory -i SOURCE --list [--limit LIMIT]`` prints."""
        hosts = [h.name for h in self.select("all") if h.name in self.hosts]
        if limit:
            allowed = {h.name for h in self.select(limit)}
            hosts = [h for h in hosts if h in allowed]
        available = set(hosts)
        out: dict[str, Any] = {}
        seen: set[str] = set()

        def fmt(name: str) -> None:
            group = self.groups[name]
            entry: dict[str, Any] = {}
            if name != "all":
                members = [h for h in group.hosts if h in available]
                if members:
                    entry["hosts"] = members
            if group.children:
                entry["children"] = list(group.children)
            for child in group.children:
                if child not in seen:
                    fmt(child)
                    seen.add(child)
            if entry:
                out[name] = entry

        fmt("all")
        hostvars = {}
        for name in hosts:
            shown = {k: v for k, v in self.hosts[name].vars.items() if k not in INTERNAL_VARS}
            if shown:
                hostvars[name] = to_plain_json(shown)
        out["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
        return out

    def to_ansible_json(self, limit: str | None = None) -> str:
        """:meth:`to_ansible_list` as the exact text ``ansible-inventory --list`` prints."""
        return ansible_json(self.to_ansible_list(limit))


def ansible_json(document: Any) -> str:
    """JSON laid out byte for byte as ``ansible-inventory --list`` prints it."""
    return json.dumps(document, sort_keys=True, indent=4, ensure_ascii=False, default=str)


def sort_groups(groups: Iterable[Group]) -> list[Group]:
    """Lowest precedence first: by depth, then ``ansible_group_priority``, then name."""
    return sorted(groups, key=lambda g: (g.depth, g.priority, g.name))


def to_plain_json(value: Any) -> Any:
    """Vars as ``ansible-inventory`` prints them (``!unsafe``/``!vault`` markers, ISO
    dates)."""
    if isinstance(value, UnsafeText):
        return {"__ansible_unsafe": str(value)}
    if isinstance(value, VaultedValue):
        return {"__ansible_vault": value.ciphertext}
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, str) else k: to_plain_json(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain_json(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _read_limit_file(path: str) -> list[str]:
    try:
        return read_bounded(path).splitlines()
    except SourceError as exc:
        raise HostPatternError(f"cannot read limit file {path}: {exc.reason}") from None


def load_inventory(sources: Sequence[str | Path], extra_sources: Sequence[Any] = ()) -> Inventory:
    """Load and merge inventory sources (``-i`` arguments), in order.

    Each source is an INI or YAML file, a directory of them (read like Ansible, skipping
    group_vars/, host_vars/ and ignored extensions), a comma-separated host list, or
    anything an ``extra_sources`` plugin (``matches(source)``, ``load(source)``) claims.

    :raises InventoryError: naming the file and line of the first problem.
    """
    inv = InventoryData()
    vars_dirs: list[Path] = []
    for source in sources:
        parse_source(source, inv, extra_sources, vars_dirs)
    try:
        inv.reconcile()
    except ValueError as exc:
        raise InventoryError(str(exc), ", ".join(str(s) for s in sources)) from None
    return Inventory(inv, [d.resolve() for d in vars_dirs])


def local_inventory() -> Inventory:
    """The embedded default: this machine alone, as ``localhost`` on the local transport."""
    inv = InventoryData()
    inv.add_host("localhost", "ungrouped")
    inv.set_host_var("localhost", "ansible_connection", "local")
    inv.reconcile()
    return Inventory(inv)
