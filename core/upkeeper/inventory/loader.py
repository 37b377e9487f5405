"""Ansible-compatible inventories: INI, YAML and directory sources, group_vars/ and
host_vars/, Ansible's variable precedence, host patterns and ``ansible-inventory --list``."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upkeeper.inventory.ini import parse_ini
from upkeeper.inventory.patterns import (
    LOCALHOST,
    HostPatternError,
    InventoryError,
    PatternMatcher,
    split_host_and_port,
)
from upkeeper.inventory.yamlfile import (
    YAML_EXTS,
    UnsafeText,
    VarsFiles,
    VaultedValue,
    load_yaml,
    parse_yaml_inventory,
    read_text,
)
from upkeeper.models import Host

__all__ = [
    "Group",
    "HostPatternError",
    "Inventory",
    "InventoryError",
    "load_inventory",
    "local_inventory",
]

# What Ansible skips when a directory is the source (INVENTORY_IGNORE_EXTS and friends).
_IGNORED = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$|"
                      r"(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|"
                      r"\.retry)$")
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


@dataclass
class Group:
    """A group as written: its own hosts (file order), child groups and its own vars."""

    name: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    parents: list[str] = field(default_factory=list)
    #: ``ansible_group_priority``: among groups of equal depth, higher wins.
    priority: int = 1
    #: Longest path from ``all`` (0); deeper groups override shallower ones.
    depth: int = 0


class InventoryData:
    """Hosts and groups as sources add them, with Ansible's rules for each addition."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {"all": Group("all"), "ungrouped": Group("ungrouped")}
        self.groups["all"].children.append("ungrouped")
        self.groups["ungrouped"].parents.append("all")
        #: host name -> vars set on the host itself (inline / hosts: entries).
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []
        self._members: dict[str, set[str]] = {}

    def has_group(self, name: str) -> bool:
        return name in self.groups

    def add_group(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise ValueError(f"invalid group name {name!r}")
        self.groups.setdefault(name, Group(name))
        return name

    def add_host(self, name: str, group: str | None = None, port: int | None = None) -> None:
        if not name:
            raise ValueError("empty host name")
        if name not in self.host_vars:
            # Like Ansible, a port counts only where the host is first declared.
            self.host_vars[name] = {"ansible_port": port} if port else {}
        if group is not None:
            members = self._members.setdefault(group, set())
            if name not in members:
                members.add(name)
                self.groups[group].hosts.append(name)

    def add_child(self, parent: str, child: str) -> None:
        if child in self.groups:
            if child == parent or child in self.ancestors(parent):
                raise ValueError(f"adding group {child!r} to {parent!r} creates a "
                                 f"dependency loop")
            if child not in self.groups[parent].children:
                self.groups[parent].children.append(child)
                self.groups[child].parents.append(parent)
        elif child in self.host_vars:
            self.add_host(child, parent)
        else:
            raise ValueError(f"{child!r} is not a known host nor group")

    def set_group_var(self, group: str, key: Any, value: Any) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"ansible_group_priority must be an integer, got "
                                 f"{value!r}") from None
        else:
            self.groups[group].vars[key] = value

    def set_host_var(self, host: str, key: Any, value: Any) -> None:
        self.host_vars[host][key] = value

    def ancestors(self, group: str) -> list[str]:
        """Every group above ``group`` (nearest first, no duplicates)."""
        out: list[str] = []
        todo = list(self.groups[group].parents)
        while todo:
            g = todo.pop(0)
            if g not in out:
                out.append(g)
                todo.extend(self.groups[g].parents)
        return out

    def reconcile(self) -> None:
        """Ansible's post-load rules: top-level groups join ``all``; a host in no group
        joins ``ungrouped``, one in a real group leaves it."""
        for name in list(self.groups):
            if name != "all" and not self.groups[name].parents:
                self.add_child("all", name)
        direct: dict[str, set[str]] = {h: set() for h in self.host_vars}
        for g in self.groups.values():
            for h in g.hosts:
                direct[h].add(g.name)
        ungrouped = self.groups["ungrouped"].hosts
        for host, groups in direct.items():
            if "ungrouped" in groups and groups - {"all", "ungrouped"}:
                ungrouped.remove(host)
                self._members["ungrouped"].discard(host)
            elif not groups - {"all"} and "ungrouped" not in groups:
                self.add_host(host, "ungrouped")
        self._set_depths()
        for name in sorted(self.groups.keys() & self.host_vars.keys()):
            self.warnings.append(f"{name!r} is both a group and a host: the pattern "
                                 f"{name!r} selects only the host")

    def _set_depths(self) -> None:
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                raise ValueError(f"group {name!r} has a recursive dependency loop")
            state[name] = 1
            for parent in self.groups[name].parents:
                visit(parent)
            state[name] = 2
            order.append(name)

        for name in self.groups:
            visit(name)
        for name in order:
            g = self.groups[name]
            g.depth = max((self.groups[p].depth + 1 for p in g.parents), default=0)


class Inventory:
    """A loaded inventory: hosts with merged vars, groups, host-pattern selection."""

    def __init__(self, data: InventoryData, vars_dirs: Sequence[Path] = ()) -> None:
        self._data = data
        self._vars = VarsFiles(vars_dirs)
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
        return Host(name=name, vars=merged, groups=names)

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
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise HostPatternError(f"cannot read limit file {path}: {exc.strerror or exc}")\
            from None


def _looks_like_yaml(text: str) -> bool:
    for line in text.splitlines():
        s = line.strip()
        if s and s[0] not in "#;":
            return s.startswith("---") or (s.endswith(":") and not s.startswith("["))
    return False


def _parse_file(path: Path, inv: InventoryData) -> None:
    name = str(path)
    ext = path.suffix.lower()
    if ext == ".toml":
        raise InventoryError("TOML inventories are not supported; use INI or YAML", name)
    if ext in YAML_EXTS:
        doc = load_yaml(path)
        if isinstance(doc.data, Mapping) and isinstance(doc.data.get("_meta"), Mapping):
            # Saved `ansible-inventory --list` output (or an RMM export in that shape).
            _parse_document(name, doc.data, inv)
        else:
            parse_yaml_inventory(doc, inv)
        return
    text = read_text(path)
    if not ext:
        # Extension-less files may be either format: Ansible tries YAML, then INI.
        try:
            doc = load_yaml(path, text)
        except InventoryError as yaml_error:
            if _looks_like_yaml(text):
                raise yaml_error from None
        else:
            if isinstance(doc.data, Mapping):
                parse_yaml_inventory(doc, inv)
                return
    parse_ini(text, name, inv)


def _parse_host_list(source: str, inv: InventoryData) -> None:
    for item in source.split(","):
        item = item.strip()
        if item and item not in inv.host_vars:
            host, port = split_host_and_port(item)
            if "[" in host:
                host, port = item, None
            inv.add_host(host, "ungrouped", port)


def _parse_document(source: str, doc: Any, inv: InventoryData) -> None:
    """An ``ansible-inventory --list`` style document from an inventory-source plugin."""
    if not isinstance(doc, Mapping):
        raise InventoryError(f"inventory source returned {type(doc).__name__}, expected a "
                             f"mapping of groups", source)
    try:
        groups = {k: v for k, v in doc.items() if k != "_meta"}
        for name in groups:
            inv.add_group(str(name))
        for name, body in groups.items():
            if isinstance(body, list):
                body = {"hosts": body}
            if not isinstance(body, Mapping):
                raise ValueError(f"group {name!r} must be a mapping, got "
                                 f"{type(body).__name__}")
            hosts = body.get("hosts") or []
            for host in hosts:
                inv.add_host(str(host), str(name))
                if isinstance(hosts, Mapping):
                    for key, value in (hosts[host] or {}).items():
                        inv.set_host_var(str(host), key, value)
            for child in body.get("children") or []:
                inv.add_child(str(name), str(child))
            for key, value in (body.get("vars") or {}).items():
                inv.set_group_var(str(name), key, value)
        meta = doc.get("_meta") or {}
        for host, host_vars in (meta.get("hostvars") or {}).items():
            inv.add_host(str(host))
            for key, value in (host_vars or {}).items():
                inv.set_host_var(str(host), key, value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InventoryError(f"bad inventory document: {exc}", source) from None


def _parse_source(source: str | Path, inv: InventoryData, extra: Sequence[Any],
                  vars_dirs: list[Path]) -> None:
    text = str(source)
    for plugin in extra:
        name = getattr(plugin, "name", type(plugin).__name__)
        try:
            if not plugin.matches(text):
                continue
            doc = plugin.load(text)
        except InventoryError:
            raise
        except Exception as exc:
            # A broken plugin must name itself, not surface as a traceback.
            raise InventoryError(f"inventory source {name} failed: {exc}", text) from exc
        _parse_document(text, doc, inv)
        if Path(text).exists():
            vars_dirs.append(Path(text) if Path(text).is_dir() else Path(text).parent)
        return
    path = Path(source)
    if not path.exists():
        if isinstance(source, str) and "," in source:
            _parse_host_list(source, inv)
            return
        raise InventoryError("no such inventory file or directory", text)
    if path.is_dir():
        vars_dirs.append(path)
        _parse_dir(path, inv)
    else:
        vars_dirs.append(path.parent)
        _parse_file(path, inv)


def _parse_dir(path: Path, inv: InventoryData) -> None:
    for entry in sorted(os.listdir(path)):
        if _IGNORED.search(entry):
            continue
        full = path / entry
        if full.is_dir():
            _parse_dir(full, inv)
        else:
            _parse_file(full, inv)


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
        _parse_source(source, inv, extra_sources, vars_dirs)
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
