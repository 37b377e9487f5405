"""Inventory data as sources add it: groups and hosts with Ansible's rules for each
addition (ports, parents and children, loops, ``ungrouped``), shared by every parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Most hosts one inventory may hold (a few bytes of ``[0:99999]`` ranges make millions).
MAX_HOSTS = 100_000


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
        #: ("host" | "group", name, var) -> where it was set ("file:line"), for messages.
        self.origins: dict[tuple[str, str, str], str] = {}
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
            if len(self.host_vars) >= MAX_HOSTS:
                raise ValueError(f"more than {MAX_HOSTS} hosts in the inventory")
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

    def set_group_var(self, group: str, key: Any, value: Any,
                      origin: str | None = None) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"ansible_group_priority must be an integer, got "
                                 f"{value!r}") from None
        else:
            self.groups[group].vars[key] = value
            if origin:
                self.origins[("group", group, str(key))] = origin

    def set_host_var(self, host: str, key: Any, value: Any, origin: str | None = None) -> None:
        self.host_vars[host][key] = value
        if origin:
            self.origins[("host", host, str(key))] = origin

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
