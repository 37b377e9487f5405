"""Health beside the facts: expiring certificates (20 days flagged, 60 not), EOL, stale
hosts, and backups/disks from the latest stored results of other checks."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tests.asbuilt.factsgen import DAY, NOW, doc, iso_in, store
from upkeeper.asbuilt.document import build_client
from upkeeper.models import Result, RunRecord, Status
from upkeeper.store.history import History


def test_certificates_within_30_days_eol_and_stale_hosts(hist: History) -> None:
    d: dict[str, Any] = doc("web1", "m-web1", NOW)
    certs = d["sections"]["certificates"]["items"]
    certs[0]["not_after"] = iso_in(20)
    certs.append({**certs[0], "source": "/etc/ssl/late.pem", "sha256": "b" * 64,
                  "not_after": iso_in(60)})
    certs.append({**certs[0], "source": "/etc/ssl/gone.pem", "sha256": "c" * 64,
                  "not_after": iso_in(-2)})
    d["sections"]["os"]["fields"].update(name="CentOS Linux", version="7", eol=True,
                                         eol_date="2024-06-30")
    store(hist, d)
    store(hist, doc("old1", "m-old1", NOW - 10 * DAY))
    found = build_client(hist, "acme", as_of=NOW, since=NOW - 30 * DAY).findings
    got = sorted((f.host, f.category, f.item, f.level) for f in found)
    assert got == [("old1", "hosts", "old1", "WARN"),
                   ("web1", "certificates", "/etc/ssl/gone.pem", "CRIT"),
                   ("web1", "certificates", "tcp/443", "WARN"),
                   ("web1", "os", "CentOS Linux", "WARN")]
    assert "expires in 20 days" in next(f.text for f in found if f.item == "tcp/443")
    assert "since 2024-06-30" in next(f.text for f in found if f.category == "os")


def _results(hist: History, host: str, results: list[Result]) -> None:
    when = datetime.fromtimestamp(NOW - 3600, tz=timezone.utc)
    run = RunRecord(run_id="r1", playbook="nightly", started=when)
    hist.start_run(run)
    for r in results:
        r.host, r.started = host, when
        hist.add_result("r1", r)


def test_backups_past_rpo_and_disks_from_latest_results(hist: History) -> None:
    store(hist, doc("web1", "m-web1", NOW))
    _results(hist, "web1", [
        Result(Status.WARN, "latest snapshot 1a2b is 30 h old (limit 26 h)",
               metrics={"age_hours": 30.0}, check="backup.restic", name="restic nightly"),
        Result(Status.OK, "latest snapshot fresh", metrics={"age_hours": 2.0},
               check="backup.borg"),
        Result(Status.WARN, "/var 91% used, full in about 9 days",
               metrics={"/var:used_pct": 91, "/var:days_to_full": 9.2}, check="disk.usage"),
        Result(Status.CRIT, "sda: 12 reallocated sectors",
               metrics={"sda:temperature_c": 41, "sda:ata_5": 12}, check="disk.smart"),
    ])
    found = build_client(hist, "acme", as_of=NOW, since=NOW - DAY).findings
    got = sorted((f.category, f.item, f.level) for f in found)
    assert got == [("backups", "restic nightly", "WARN"), ("disks", "disk.smart", "CRIT"),
                   ("filesystems", "/var", "WARN")]
    assert "full in about 9 days" in next(f.text for f in found if f.item == "/var")
