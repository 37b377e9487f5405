"""Health beside the facts: certificates about to expire, end-of-life operating systems,
backups past their RPO, disks filling up or failing, hosts not seen for days.

Facts give the first two and the last; the latest stored results of the other checks
give backups and disks, read by the metric names of the shared vocabulary
(``age_hours``, ``<mount>:days_to_full``, SMART attributes per device), never by a
plugin's check names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from upkeeper.asbuilt.categories import is_unavailable
from upkeeper.asbuilt.snapshots import HostDoc
from upkeeper.models import Result, Status

if TYPE_CHECKING:
    from upkeeper.store.history import History

CERT_DAYS = 30
STALE_DAYS = 7
#: Metric suffixes only a SMART-style device check reports.
SMART_SUFFIXES = (":temperature_c", ":percentage_used", ":power_on_hours", ":ata_5",
                  ":nvme_media_errors", ":scsi_grown_defects")
_TROUBLE = (Status.WARN, Status.CRIT)


@dataclass(frozen=True)
class Finding:
    """One health problem beside the facts it concerns (``category`` is the section)."""

    category: str
    level: str
    host: str
    identity: str
    item: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"category": self.category, "level": self.level, "host": self.host,
                "id": self.identity, "item": self.item, "text": self.text}


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` accepted; naive means UTC), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _items(doc: HostDoc, key: str) -> list[Mapping[str, Any]]:
    section = doc.sections.get(key)
    items = section.get("items") if isinstance(section, Mapping) else None
    return [i for i in items or [] if isinstance(i, Mapping)]


def fact_findings(doc: HostDoc, as_of: float, *, cert_days: int = CERT_DAYS,
                  stale_days: int = STALE_DAYS) -> list[Finding]:
    """Findings the facts themselves give (certificates, EOL, not seen)."""
    out: list[Finding] = []
    now = datetime.fromtimestamp(as_of, tz=timezone.utc)
    for cert in _items(doc, "certificates"):
        after = parse_time(cert.get("not_after"))
        if after is None:
            continue
        days = (after - now).total_seconds() / 86400
        if days <= cert_days:
            what = "expired" if days < 0 else f"expires in {days:.0f} days"
            out.append(Finding("certificates", "CRIT" if days < 7 else "WARN", doc.host,
                               doc.identity, str(cert.get("source") or cert.get("subject")),
                               f"{cert.get('subject', '?')} {what} ({cert.get('not_after')})"))
    os_section = doc.sections.get("os")
    fields = os_section.get("fields") if isinstance(os_section, Mapping) else None
    if isinstance(fields, Mapping) and fields.get("eol") is True:
        eol_date = fields.get("eol_date")
        out.append(Finding("os", "WARN", doc.host, doc.identity, str(fields.get("name")),
                           f"{fields.get('name')} {fields.get('version', '')} is end of life"
                           + (f" since {eol_date}" if eol_date and not is_unavailable(eol_date)
                              else "")))
    if "+uuid:" in doc.identity:
        out.append(Finding("identity", "WARN", doc.host, doc.identity, doc.host,
                           "shares its machine id with another machine (a clone of a "
                           "template that was not generalised?)"))
    age_days = (as_of - doc.collected_at) / 86400
    if age_days >= stale_days:
        out.append(Finding("hosts", "WARN", doc.host, doc.identity, doc.host,
                           f"not seen for {age_days:.0f} days"))
    return out


def result_findings(doc: HostDoc, results: Iterable[Result]) -> list[Finding]:
    """Findings of the latest results of the host's other checks (backups, disks)."""
    out: list[Finding] = []
    for r in results:
        label = r.name or r.check
        if "age_hours" in r.metrics and r.status in _TROUBLE:
            out.append(Finding("backups", r.status.value, doc.host, doc.identity, label,
                               f"past its RPO: {r.summary}"))
        for metric, value in sorted(r.metrics.items()):
            if metric.endswith(":days_to_full"):
                device = metric[:-len(":days_to_full")]
                out.append(Finding("filesystems", r.status.value if r.status in _TROUBLE
                                   else "INFO", doc.host, doc.identity, device,
                                   f"{device} full in about {value:.0f} days"))
        if r.status in _TROUBLE and any(m.endswith(SMART_SUFFIXES) for m in r.metrics):
            out.append(Finding("disks", r.status.value, doc.host, doc.identity, label,
                               f"SMART: {r.summary}"))
    return out


def latest_results(history: History, hosts: Iterable[str],
                   until: float) -> dict[str, list[Result]]:
    """Per host name: the newest result of each check (and result name) up to ``until``,
    with metrics but without details (fact documents are large and not needed here)."""
    out: dict[str, list[Result]] = {}
    for host in sorted(set(hosts)):
        rows = history.query(
            "SELECT id, check_name, name, status, summary, ts FROM (SELECT *, ROW_NUMBER()"
            " OVER (PARTITION BY check_name, name ORDER BY ts DESC, id DESC) AS rn FROM"
            " results WHERE host=? AND ts<=?) WHERE rn=1 ORDER BY check_name, name",
            (host, until))
        if not rows:
            continue
        metrics: dict[int, dict[str, float]] = {}
        marks = ",".join("?" * len(rows))
        for m in history.query("SELECT result_id, metric, value FROM metrics WHERE"
                               f" result_id IN ({marks})", tuple(r["id"] for r in rows)):
            metrics.setdefault(m["result_id"], {})[m["metric"]] = m["value"]
        out[host] = [Result(Status(r["status"]), r["summary"], metrics=metrics.get(r["id"], {}),
                            host=host, check=r["check_name"], name=r["name"],
                            started=datetime.fromtimestamp(r["ts"], tz=timezone.utc))
                     for r in rows]
    return out


def findings(docs: Iterable[HostDoc], as_of: float, history: History | None = None, *,
             cert_days: int = CERT_DAYS, stale_days: int = STALE_DAYS) -> list[Finding]:
    """Every finding for ``docs``, sorted by host, category, item."""
    docs = list(docs)
    results = latest_results(history, (d.host for d in docs), as_of) if history else {}
    out: list[Finding] = []
    for d in docs:
        out += fact_findings(d, as_of, cert_days=cert_days, stale_days=stale_days)
        out += result_findings(d, results.get(d.host, []))
    return sorted(out, key=lambda f: (f.host.lower(), f.identity, f.category, f.item, f.text))
