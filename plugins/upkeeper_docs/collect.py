"""``docs.collect``: the as-built facts of one host (identity, OS, hardware, network,
ports, software, services, admins, certificates, backups) as one fact document."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from upkeeper import Check, CheckContext, Params, Result, Status
from upkeeper.argv import check_path
from upkeeper.measures import Duration
from upkeeper_docs import backups, certs, linux
from upkeeper_docs.facts import (
    NONE_REPORTED,
    NOT_COLLECTED,
    Section,
    document,
    failed,
    short,
    tally,
    unavailable,
)

if TYPE_CHECKING:
    DocsDuration = timedelta
else:
    DocsDuration = Duration

_WINDOWS_PATH = re.compile(r"^([A-Za-z]:\\|\\\\[^\\\x00-\x1f]+\\)[^\x00-\x1f]*$")
_STORE_RE = re.compile(r"^(LocalMachine|CurrentUser)\\[A-Za-z0-9 ._-]+$")


class BackupJob(BaseModel):
    """A backup job to document even when no backup check reports it."""

    model_config = ConfigDict(extra="forbid")
    tool: str = Field(min_length=1, max_length=64)
    repository: str = Field(min_length=1, max_length=1024)


class CollectParams(Params):
    sudo: bool = Field(False, description="Run the collection with sudo (SMBIOS serial and "
                                          "UUID, other users' listening processes, "
                                          "root-only certificate files)")
    tls_probe: bool = Field(True, description="Read the certificate of each listening TCP "
                                              "port (the host connects to itself)")
    tls_ports: list[int] = Field(default_factory=list,
                                 description="Probe only these ports (default: every "
                                             "listening TCP port but tls_skip_ports)")
    tls_skip_ports: list[int] = Field(
        default_factory=lambda: [22, 53, 111, 135, 139, 445, 3389, 5985],
        description="Ports never probed (SSH, DNS, RPC, SMB, RDP, WinRM over HTTP)")
    tls_max_ports: int = Field(64, ge=0, le=1024, description="Probe at most this many ports")
    tls_timeout: DocsDuration = Field(timedelta(seconds=3),
                                      description="Handshake time allowed per port")
    tls_servername: str | None = Field(None, max_length=253,
                                       pattern=r"^[A-Za-z0-9.-]+$",
                                       description="SNI name sent to the ports")
    cert_files: list[str] = Field(
        default_factory=list,
        description="Certificate files on the host, absolute paths (PEM or DER; globs "
                    "allowed on Linux; C:\\... on Windows); only their certificates are "
                    "read, never keys")
    cert_stores: list[str] = Field(default_factory=lambda: ["LocalMachine\\My"],
                                   description="Windows certificate stores read")
    backups: list[BackupJob] = Field(default_factory=list,
                                     description="Backup jobs to list besides those the "
                                                 "backup checks report")
    backup_look_back: DocsDuration = Field(
        timedelta(days=8), description="How old a backup check's result may be to count")

    @field_validator("cert_files")
    @classmethod
    def _files(cls, value: list[str]) -> list[str]:
        for path in value:
            if not _WINDOWS_PATH.match(path):
                check_path(path)
        return value

    @field_validator("cert_stores")
    @classmethod
    def _stores(cls, value: list[str]) -> list[str]:
        for store in value:
            if not _STORE_RE.match(store):
                raise ValueError(f"not a certificate store like LocalMachine\\My: {store!r}")
        return value


class DocsCollect(Check[CollectParams]):
    """As-built facts of a host for the client documentation (``upkeeper docs``)."""

    name = "docs.collect"
    description = ("As-built facts for client documentation: identity, OS and EOL, "
                   "hardware, network, ports, software, services, admins, certificates, "
                   "backups")
    Params = CollectParams
    platforms = ("linux", "windows")
    timeout = 180.0

    def run(self, ctx: CheckContext[CollectParams]) -> Result:
        started = time.time()
        if ctx.is_windows:
            from upkeeper_docs import windows
            sections, platform = windows.collect(ctx, started), "windows"
        else:
            sections, platform = self._linux(ctx, started), "linux"
        sections.append(backups_section(ctx))
        doc = document(ctx.host.name, platform, sections, started)
        ok, failures, not_applicable = tally(doc)
        summary = f"documented: {ok} categories"
        if failures:
            summary += f", {len(failures)} unavailable ({', '.join(failures)})"
        if not_applicable:
            summary += f", n/a: {', '.join(not_applicable)}"
        metrics = {"collect_seconds": round(time.time() - started, 3),
                   "categories_unavailable": len(failures)}
        return Result(Status.WARN if failures else Status.OK, summary, metrics=metrics,
                      details={"facts": doc})

    def _linux(self, ctx: CheckContext[CollectParams], at: float) -> list[Section]:
        p = ctx.params
        res = ctx.run(linux.script(), sudo=p.sudo)
        root = linux.split_sections(res.stdout).get("uid", "").strip() == "0"
        out = linux.Output(res.stdout, res.stderr, root=root)
        prefix = f"{ctx.host.connection}{', sudo' if p.sudo else ''}: "
        stopped = ""
        if res.timed_out:
            stopped = f"timed out after {res.duration:.0f}s"
        elif "end" not in out.out:
            errs = [ln for ln in res.stderr.splitlines() if ln.strip() and "@@upk" not in ln]
            stopped = errs[-1] if errs else f"exit code {res.exit_code}"
        sections = linux.collect_sections(out, prefix, at, short(stopped))
        ports = next(s for s in sections if s.name == "ports")
        if res.timed_out:
            sections.append(failed("certificates", prefix + "openssl s_client",
                                   f"skipped: {stopped}", at))
        else:
            sections.append(_linux_certs(ctx, ports, prefix))
        return sections


def probe_targets(ports: Section, p: CollectParams) -> list[tuple[str, str, int]]:
    """One ``(label, address, port)`` per listening TCP port to probe."""
    if not p.tls_probe or ports.reason:
        return []
    seen: dict[int, tuple[str, str, int]] = {}
    for item in ports.items:
        port = item["port"]
        if item["proto"] != "tcp" or port in seen or port in p.tls_skip_ports:
            continue
        if p.tls_ports and port not in p.tls_ports:
            continue
        seen[port] = (f"tcp/{port}", certs.probe_target(item["address"]), port)
    return sorted(seen.values(), key=lambda t: t[2])[:p.tls_max_ports]


def _linux_certs(ctx: CheckContext[CollectParams], ports: Section, prefix: str) -> Section:
    p = ctx.params
    sec = Section("certificates", prefix + "openssl s_client on the host to its listening "
                  "TCP ports; CERTIFICATE blocks of cert_files")
    targets = probe_targets(ports, p)
    if not targets and not p.cert_files:
        if not p.tls_probe:
            return sec.fail(f"{NOT_COLLECTED}: tls_probe is off and no cert_files given")
        if ports.reason:
            return sec.fail(f"listening ports unknown: {ports.reason}")
        return sec
    timeout = max(1, int(p.tls_timeout.total_seconds()))
    script = certs.linux_script(targets, p.cert_files, timeout, p.tls_servername)
    res = ctx.run(script, sudo=p.sudo, timeout=timeout * 2 + 30)
    if res.timed_out:
        return sec.fail("certificate probe timed out")
    return fill_certs(sec, certs.split_output(res.stdout), {f"tcp/{t[2]}" for t in targets})


def fill_certs(sec: Section, parts: list[tuple[str, str]], probes: set[str]) -> Section:
    """Items from per-source texts; a requested file without a certificate is an item whose
    values are unavailable (with why), a port without TLS is no item."""
    tools_missing = []
    for source, text in parts:
        leaf = source in probes
        items, problem = certs.items_from(source, text, leaf_only=leaf)
        sec.items += items
        if items or not problem:
            continue
        if leaf:
            if "no TLS handshake" not in problem:
                tools_missing.append(problem)
            continue
        gone = unavailable(problem)
        sec.items.append({"source": source, "subject": gone, "sans": [], "issuer": gone,
                          "not_before": gone, "not_after": gone, "sha256": gone})
    if tools_missing and not sec.items:
        sec.fail(tools_missing[0])
    # A file given by name and matched by a glob too is read twice: list it once.
    unique = {json.dumps(c, sort_keys=True, default=str): c for c in sec.items}
    sec.items = list(unique.values())
    sec.items.sort(key=lambda c: (c["source"], str(c["sha256"])))
    return sec


def backups_section(ctx: CheckContext[CollectParams]) -> Section:
    p = ctx.params
    listed = [job.model_dump() for job in p.backups]
    items, source = backups.collect(ctx, listed, p.backup_look_back)
    sec = Section("backups", source)
    sec.items = items
    if not items:
        sec.fail(f"{NONE_REPORTED}: no backup check reported on this host within "
                 f"{p.backup_look_back.days}d and no backups listed in params")
    return sec

