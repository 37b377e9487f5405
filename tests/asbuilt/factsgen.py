"""Fact documents shaped by the docs.collect contract (/docs/documentation-collection.md),
written here so the document tests do not depend on the collector."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from upkeeper.asbuilt.snapshots import store_doc
from upkeeper.engine.secrets import mask_secret_data
from upkeeper.store.history import History

#: 2026-12-01 00:00 UTC: the "now" of every fixture.
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()
DAY = 86400.0


def iso_in(days: float, base: float = NOW) -> str:
    when = datetime.fromtimestamp(base, tz=timezone.utc) + timedelta(days=days)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _section(at: float, source: str, *, fields: dict[str, Any] | None = None,
             items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"source": source, "collected_at": at, "unavailable": None}
    if fields is not None:
        out["fields"] = fields
    if items is not None:
        out["items"] = items
    return out


def make_doc(host: str, machine_id: str | None, at: float = NOW, *, software: int = 5,
             seed: int = 0) -> dict[str, Any]:
    """A complete Linux fact document; ``software`` packages beyond the named ones."""
    sha = hashlib.sha256(f"{host}-{seed}".encode()).hexdigest()
    s = lambda fields=None, items=None, src="cmd": _section(at, src, fields=fields,  # noqa: E731
                                                            items=items)
    return {
        "schema_version": 1, "host": host, "collected_at": at, "platform": "linux",
        "identity_keys": {"machine_id": machine_id, "smbios_uuid": None, "serial": None},
        "sections": {
            "identity": s({"hostname": host, "fqdn": f"{host}.example.test",
                           "machine_id": machine_id, "smbios_uuid": {"unavailable": "no root"},
                           "serial": "SN-" + host, "manufacturer": "QEMU", "model": "Standard PC",
                           "virtual": True, "hypervisor": "kvm"}),
            "os": s({"name": "Ubuntu", "version": "22.04", "build": "22.04.4",
                     "kernel": "5.15.0-100-generic", "install_date": "2024-01-02",
                     "last_boot": iso_in(-3, at), "uptime_seconds": 259200, "eol": False,
                     "eol_date": "2027-04-30"}),
            "hardware": s({"cpu_model": "Intel Xeon", "cpu_cores": 4, "cpu_threads": 8,
                           "ram_bytes": 8 << 30, "ram_free_bytes": 3 << 30, "load_1m": 0.4}),
            "disks": s(items=[{"name": "vda", "model": "QEMU HARDDISK", "serial": "D1-" + host,
                               "size_bytes": 100 << 30}]),
            "filesystems": s(items=[{"mount": "/", "device": "/dev/vda1", "fstype": "ext4",
                                     "size_bytes": 99 << 30, "used_bytes": 40 << 30,
                                     "free_bytes": 59 << 30}]),
            "interfaces": s(items=[{"name": "eth0", "mac": "52:54:00:12:34:56",
                                    "addresses": ["192.0.2.10/24"], "dhcp": False},
                                   {"name": "lo", "mac": None, "addresses": ["127.0.0.1/8"],
                                    "dhcp": False}]),
            "network": s({"default_gateway": "192.0.2.1", "dns_servers": ["192.0.2.53"]}),
            "ports": s(items=[{"proto": "tcp", "address": "0.0.0.0", "port": 22,
                               "process": "sshd"},
                              {"proto": "tcp", "address": "0.0.0.0", "port": 443,
                               "process": "nginx"}]),
            "software": s(items=[{"name": "openssl", "version": "3.0.2", "arch": "amd64"},
                                 {"name": "nginx", "version": "1.18.0", "arch": "amd64"},
                                 {"name": "telnet", "version": "0.17", "arch": "amd64"}]
                          + [{"name": f"lib{n:04d}", "version": f"1.{n}", "arch": "amd64"}
                             for n in range(software)]),
            "roles": s(unavailable_reason("not Windows")),
            "services": s(items=[{"name": "nginx", "enabled": True, "running": True},
                                 {"name": "ssh", "enabled": True, "running": True}]),
            "admins": s(items=[{"name": "alice", "group": "sudo"},
                               {"name": "bob", "group": "sudo"}]),
            "certificates": s(items=[{"source": "tcp/443", "subject": f"CN={host}",
                                      "sans": [f"{host}.example.test"], "issuer": "CN=Test CA",
                                      "not_before": iso_in(-300, at),
                                      "not_after": iso_in(200, at), "sha256": sha}]),
            "backups": s(items=[{"tool": "restic", "repository": "/srv/restic",
                                 "last_snapshot": iso_in(-1, at)}]),
        },
    }


def unavailable_reason(reason: str) -> dict[str, Any]:
    return {"__unavailable__": reason}


def _fix_unavailable(doc: dict[str, Any]) -> dict[str, Any]:
    for key, section in doc["sections"].items():
        fields = section.get("fields")
        if isinstance(fields, dict) and "__unavailable__" in fields:
            doc["sections"][key] = {"source": section["source"],
                                    "collected_at": section["collected_at"],
                                    "unavailable": fields["__unavailable__"], "items": []}
    return doc


def doc(host: str, machine_id: str | None, at: float = NOW, **kw: Any) -> dict[str, Any]:
    return _fix_unavailable(make_doc(host, machine_id, at, **kw))


def later(base: dict[str, Any], days: float, edit: Callable[[dict[str, Any]], None] | None = None,
          ) -> dict[str, Any]:
    """``base`` collected ``days`` later with volatile noise, then ``edit`` applied."""
    new = copy.deepcopy(base)
    at = base["collected_at"] + days * DAY
    new["collected_at"] = at
    for section in new["sections"].values():
        section["collected_at"] = at
    sec = new["sections"]
    sec["os"]["fields"]["uptime_seconds"] += int(days * DAY)
    sec["os"]["fields"]["last_boot"] = iso_in(-1, at)
    sec["hardware"]["fields"]["ram_free_bytes"] = 1 << 30
    sec["hardware"]["fields"]["load_1m"] = 3.7
    for fs in sec["filesystems"]["items"]:
        fs["used_bytes"] += 5 << 30
        fs["free_bytes"] -= 5 << 30
    for svc in sec["services"]["items"]:
        svc["running"] = not svc["running"]
    for job in sec["backups"]["items"]:
        job["last_snapshot"] = iso_in(-0.5, at)
    if edit is not None:
        edit(new)
    return new


def store(history: History, document: dict[str, Any], client: str | None = "acme",
          source: str = "docs.collect") -> str:
    return store_doc(history, document, source=source, client=client, mask=mask_secret_data)
