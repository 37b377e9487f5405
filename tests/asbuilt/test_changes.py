"""What changed: exactly the seeded structural changes, never volatile noise; identities
that survive renames and never merge."""

from __future__ import annotations

from typing import Any

from tests.asbuilt.factsgen import DAY, NOW, doc, later, store
from upkeeper.asbuilt.document import build_client
from upkeeper.store.history import History


def seed_twelve(d: dict[str, Any]) -> None:
    """12 structural changes in 8 categories."""
    s = d["sections"]
    sw = s["software"]["items"]
    sw.append({"name": "htop", "version": "3.2", "arch": "amd64"})              # 1 software +
    sw[:] = [p for p in sw if p["name"] != "telnet"]                             # 2 software -
    next(p for p in sw if p["name"] == "openssl")["version"] = "3.0.13"          # 3 upgraded
    s["ports"]["items"].append({"proto": "tcp", "address": "0.0.0.0", "port": 3389,
                                "process": "xrdp"})                              # 4 opened
    s["ports"]["items"] = [p for p in s["ports"]["items"] if p["port"] != 443]   # 5 closed
    s["admins"]["items"].append({"name": "mallory", "group": "sudo"})            # 6 admin +
    s["admins"]["items"] = [a for a in s["admins"]["items"] if a["name"] != "bob"]  # 7 -
    s["interfaces"]["items"][0]["addresses"] = ["192.0.2.77/24"]                 # 8 network
    s["disks"]["items"].append({"name": "vdb", "model": "QEMU", "serial": "D2",
                                "size_bytes": 1 << 40})                          # 9 disks +
    cert = s["certificates"]["items"][0]
    cert.update(sha256="f" * 64, not_after="2027-12-01T00:00:00Z")               # 10 replaced
    s["backups"]["items"].append({"tool": "borg", "repository": "ssh://b/repo",
                                  "last_snapshot": None})                        # 11 backups +
    s["os"]["fields"].update(version="24.04", build="24.04.1",
                             kernel="6.8.0-45-generic")                          # 12 os


def test_exactly_the_twelve_seeded_changes_and_no_volatile_noise(hist: History) -> None:
    before = doc("web1", "m-web1", NOW - 40 * DAY)
    store(hist, before)
    after = later(before, 35, seed_twelve)
    # more noise: a section the collector could not read this time is not "all removed"
    after["sections"]["services"] = {"source": "systemctl", "collected_at": 0,
                                     "unavailable": "timed out", "items": []}
    store(hist, after)
    d = build_client(hist, "acme", as_of=NOW, since=NOW - 38 * DAY)
    got = sorted((c.group, c.action, c.item) for c in d.changes)
    assert got == sorted([
        ("software", "added", "htop amd64"), ("software", "removed", "telnet amd64"),
        ("software", "upgraded", "openssl amd64"),
        ("ports", "opened", "tcp 0.0.0.0 3389"), ("ports", "closed", "tcp 0.0.0.0 443"),
        ("admins", "added", "mallory sudo"), ("admins", "removed", "bob sudo"),
        ("network", "changed", "eth0"), ("disks", "added", "D2"),
        ("certificates", "replaced", "tcp/443"), ("backups", "added", "borg ssh://b/repo"),
        ("os", "upgraded", "build, kernel, version"),
    ])
    assert len({c.group for c in d.changes}) == 8
    upgrade = next(c for c in d.changes if c.action == "upgraded" and c.group == "software")
    assert (upgrade.before, upgrade.after) == ({"version": "3.0.2"}, {"version": "3.0.13"})


def test_volatile_only_differences_are_no_changes(hist: History) -> None:
    before = doc("web1", "m-web1", NOW - 10 * DAY)
    store(hist, before)
    store(hist, later(before, 9))
    assert build_client(hist, "acme", as_of=NOW, since=NOW - 9.5 * DAY).changes == []


def test_renamed_host_is_the_same_host(hist: History) -> None:
    before = doc("web1", "m-web1", NOW - 10 * DAY)
    store(hist, before)

    def rename(d: dict[str, Any]) -> None:
        d["host"] = "web1-new"
    store(hist, later(before, 9, rename))
    d = build_client(hist, "acme", as_of=NOW, since=NOW - 9.5 * DAY)
    assert [(h.host, h.aliases) for h in d.hosts] == [("web1-new", ("web1",))]
    assert d.changes == []


def test_two_identities_never_merge_even_with_one_name(hist: History) -> None:
    store(hist, doc("web1", "m-aaa", NOW - 10 * DAY))
    store(hist, doc("web1", "m-bbb", NOW - 1 * DAY))
    d = build_client(hist, "acme", as_of=NOW, since=NOW - 5 * DAY)
    assert sorted(h.identity for h in d.hosts) == ["machine-id:m-aaa", "machine-id:m-bbb"]
    assert sorted((c.action, c.identity) for c in d.changes) == [
        ("appeared", "machine-id:m-bbb"), ("vanished", "machine-id:m-aaa")]


def test_identity_falls_back_to_uuid_serial_then_weak_name(hist: History) -> None:
    a = doc("a", None)
    a["identity_keys"] = {"machine_id": None, "smbios_uuid": "ABC-1", "serial": "S1"}
    b = doc("b", None)
    b["identity_keys"] = {"serial": "S2"}
    c = doc("c", None)
    c["identity_keys"] = {"machine_id": {"unavailable": "no file"}}
    assert [store(hist, x) for x in (a, b, c)] == ["uuid:abc-1", "serial:S2".lower(), "name:c"]
    weak = {h.identity: h.weak for h in build_client(hist, "acme", as_of=NOW,
                                                      since=NOW - DAY).hosts}
    assert weak == {"uuid:abc-1": False, "serial:s2": False, "name:c": True}


def test_clones_sharing_a_machine_id_never_merge(hist: History) -> None:
    def with_uuid(host: str, uuid: str | None, at: float) -> dict[str, Any]:
        d = doc(host, "0123abcd_%", at)
        d["identity_keys"]["smbios_uuid"] = uuid
        return d
    first = store(hist, with_uuid("vm1", "AAAA-1", NOW - 3 * DAY))
    second = store(hist, with_uuid("vm2", "bbbb-2", NOW - 2 * DAY))
    assert first == "machine-id:0123abcd_%"
    assert second == "machine-id:0123abcd_%+uuid:bbbb-2"
    # Each keeps its key on later collections; without sudo (no UUID) the machine id is
    # all there is.
    assert store(hist, with_uuid("vm1", "aaaa-1", NOW - DAY)) == first
    assert store(hist, with_uuid("vm2", "BBBB-2", NOW - DAY)) == second
    assert store(hist, with_uuid("vm1", None, NOW)) == first
    d = build_client(hist, "acme", as_of=NOW, since=NOW - 2.5 * DAY)
    assert sorted(h.host for h in d.hosts) == ["vm1", "vm2"]
    assert [(f.host, f.category) for f in d.findings] == [("vm2", "identity")]


def test_documented_structural_volatile_table_matches_the_code() -> None:
    """docs/documentation.md lists each built-in category's keys and volatile fields."""
    from pathlib import Path

    from upkeeper.asbuilt.categories import BUILTIN

    text = (Path(__file__).resolve().parents[2] / "docs" / "documentation.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|") for line in text.splitlines()
            if line.startswith("| ") and line.count("|") == 6}
    for cat in BUILTIN:
        cells = rows[cat.key]
        keys = cells[2].strip()
        volatile = cells[3].strip()
        assert all(f"`{k}`" in keys for k in cat.keys), cat.key
        assert sorted(v.strip("` ") for v in volatile.split(",") if v.strip() != "-") \
            == sorted(cat.volatile), cat.key
        assert cells[4].strip() == cat.change_group, cat.key


def test_history_grows_with_structural_changes_not_with_runs(hist: History) -> None:
    base = doc("web1", "m-web1", NOW - 30 * DAY)
    store(hist, base)
    for day in range(1, 10):  # nightly collections: only volatile noise
        store(hist, later(base, day))

    def add_admin(d: dict[str, Any]) -> None:
        d["sections"]["admins"]["items"].append({"name": "eve", "group": "sudo"})
    changed = later(base, 10, add_admin)
    store(hist, changed)
    for day in range(11, 20):
        store(hist, later(changed, day - 10))
    rows = hist.query("SELECT first_at, collected_at FROM asbuilt_snapshots ORDER BY id")
    assert [(r[0], r[1]) for r in rows] == [(NOW - 30 * DAY, NOW - 21 * DAY),
                                            (NOW - 20 * DAY, NOW - 11 * DAY)]
    # The state at any time is still what was collected then.
    assert build_client(hist, "acme", as_of=NOW - 15 * DAY, since=NOW - 25 * DAY).changes[0] \
        .item == "eve sudo"
    assert build_client(hist, "acme", as_of=NOW - 22 * DAY, since=NOW - 25 * DAY).changes == []
    d = build_client(hist, "acme", as_of=NOW, since=NOW - 15 * DAY)
    assert d.changes == [] and d.hosts[0].collected_at == NOW - 11 * DAY
    load = d.hosts[0].sections["hardware"]["fields"]["load_1m"]
    assert load == 3.7  # volatile values are the newest collection's
