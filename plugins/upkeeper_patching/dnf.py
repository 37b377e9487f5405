"""dnf and yum (RHEL, Rocky, Alma, Fedora, CentOS 7): pending and security updates.

``check-update`` exits 100 when updates exist; its table wraps long names and versions
onto following lines and may carry an "Obsoleting Packages" section, plugin noise and
localised banners, so the parser follows package tokens rather than columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from upkeeper_patching.model import (
    RPM_ARCHES,
    PatchState,
    Section,
    Update,
    parse_offset,
    rpm_name,
)
from upkeeper_patching.runs import PatchRun, newest, operands, program

_SEVERITY_RE = re.compile(r"^([A-Za-z]*)/?Sec\.?$")
#: One ``history list`` row: dnf 4 separates cells with ``|``, dnf5 with spaces only.
_HISTORY_ROW_RE = re.compile(
    r"^\s*(?P<id>\d+)\s*\|?(?P<cmd>.*?)\|?\s*"
    r"(?P<date>\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})?)\s*\|?[^|\d]*\|?\s*"
    r"(?P<altered>\d+)\s*(?P<flags>\S*)\s*$")
_DNF_PROGRAMS = frozenset({"dnf", "dnf5", "dnf-3", "dnf4", "yum", "microdnf"})
_DNF_UPGRADE_VERBS = frozenset({
    "upgrade", "update", "up", "upgrade-minimal", "update-minimal", "up-min",
    "distro-sync", "distrosync", "distribution-synchronization", "dsync", "automatic",
})
#: Options that pick some advisories only: the run is not a patch run.
_DNF_SELECTING_OPTIONS = frozenset({
    "--advisory", "--advisories", "--cve", "--cves", "--bz", "--bzs", "--sec-severity",
    "--secseverity", "--updateinfo-id",
})
_DNF_VALUE_OPTIONS = frozenset({
    "-x", "--exclude", "--excludepkgs", "--setopt", "-c", "--config", "--releasever",
    "--installroot", "--enablerepo", "--disablerepo", "--repo", "--repoid", "--from-repo",
    "-d", "--debuglevel", "-e", "--errorlevel", "--rpmverbosity", "--forcearch",
    "--downloaddir", "--destdir", "--comment", "--color", "--repofrompath",
    "--disableplugin", "--enableplugin", "--disableexcludes", "--disableexcludepkgs",
    *_DNF_SELECTING_OPTIONS,
})


def status_script(pm: str) -> str:
    """One shell round trip gathering everything ``patching.status`` needs (dnf or yum)."""
    security = "updateinfo list --security" if pm == "dnf" else "updateinfo list security"
    restart = (f"if command -v needs-restarting >/dev/null 2>&1; then needs-restarting -r; "
               f"else {pm} needs-restarting -r; fi 2>&1")
    return (
        "LC_ALL=C; export LC_ALL\n"
        "echo '@@upk:check-update'\n"
        f"{pm} check-update 2>&1\n"
        'echo "@@upk-rc $?"\n'
        "echo '@@upk:updateinfo'\n"
        f"{pm} -q {security} 2>/dev/null\n"
        'echo "@@upk-rc $?"\n'
        "echo '@@upk:installed'\n"
        "rpm -qa --qf '%{NAME}.%{ARCH} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{INSTALLTIME}\\n'"
        " 2>/dev/null\n"
        "echo '@@upk:history'\n"
        # dnf5 truncates the command line to the terminal width (80 off a terminal).
        f"COLUMNS=400 {pm} history list 2>/dev/null\n"
        "echo '@@upk:reboot'\n"
        f"{restart}\n"
        'echo "@@upk-rc $?"\n'
        "echo '@@upk:tz'\n"
        "date +%z\n"
    )


@dataclass
class _Row:
    tokens: list[str]
    indented: bool
    section: str


def _is_package_token(token: str) -> bool:
    name, dot, arch = token.rpartition(".")
    return bool(dot and name and arch in RPM_ARCHES)


def parse_check_update(text: str) -> list[Update]:
    """Parse ``yum|dnf check-update`` output, tolerating wrapped columns and noise.

    Obsoleting packages are returned with ``kind="obsoletes"`` and ``replaces`` naming
    the installed package they replace.
    """
    rows: list[_Row] = []
    section = "updates"
    current: _Row | None = None
    for raw in text.replace("\r", "").splitlines():
        if not raw.strip():
            current = None
            continue
        if raw.strip() in ("Obsoleting Packages", "Obsoleting packages"):
            section = "obsoletes"
            current = None
            continue
        indented = raw[:1].isspace()
        tokens = raw.split()
        if current is not None and len(current.tokens) < 3 and indented:
            current.tokens.extend(tokens)
            continue
        if _is_package_token(tokens[0]):
            current = _Row(tokens, indented, section)
            rows.append(current)
        else:
            current = None
    updates: list[Update] = []
    seen: set[tuple[str, str]] = set()
    previous: Update | None = None
    for row in rows:
        if len(row.tokens) < 3:
            continue
        name, _, arch = row.tokens[0].rpartition(".")
        if row.section == "obsoletes" and row.indented:
            if previous is not None and previous.kind == "obsoletes":
                previous.replaces = name
                previous.current = previous.current or row.tokens[1]
            continue
        if (name, arch) in seen:
            # A package both updated and obsoleting something is listed twice.
            previous = None
            continue
        seen.add((name, arch))
        previous = Update(
            name=name, arch=arch, available=row.tokens[1], repo=row.tokens[2],
            kind="obsoletes" if row.section == "obsoletes" else "package",
        )
        updates.append(previous)
    return updates


@dataclass
class Advisory:
    advisory: str
    severity: str
    nevra: str

    @property
    def name(self) -> str:
        return rpm_name(self.nevra)


def parse_updateinfo(text: str) -> list[Advisory]:
    """Parse ``updateinfo list --security`` (dnf 4, yum 3, dnf 5 table) lines."""
    out: list[Advisory] = []
    for raw in text.splitlines():
        tokens = raw.split()
        if len(tokens) < 3 or tokens[0] in ("Name", "Last", "Loaded", "updateinfo"):
            continue
        kind = tokens[1]
        m = _SEVERITY_RE.match(kind)
        if m:
            severity = m.group(1)
        elif kind.lower() == "security" and len(tokens) >= 4:
            # dnf 5: NAME TYPE SEVERITY PACKAGE ISSUED
            severity = tokens[2] if not _looks_like_nevra(tokens[2]) else ""
        else:
            continue
        nevra = next((t for t in tokens[2:] if _looks_like_nevra(t)), "")
        if nevra:
            out.append(Advisory(tokens[0], severity if severity != "None" else "", nevra))
    return out


def _looks_like_nevra(token: str) -> bool:
    base, dot, arch = token.rpartition(".")
    return bool(dot) and arch in RPM_ARCHES and base.count("-") >= 2


def parse_rpm_installed(text: str) -> dict[str, tuple[str, int]]:
    """``name.arch epoch:version-release installtime`` lines -> {name.arch: (evr, time)}."""
    out: dict[str, tuple[str, int]] = {}
    for raw in text.splitlines():
        parts = raw.split()
        if len(parts) != 3 or not parts[2].isdigit():
            continue
        evr = parts[1][2:] if parts[1].startswith("0:") else parts[1]
        out[parts[0]] = (evr, int(parts[2]))
    return out


def dnf_patch_kind(commandline: str) -> str | None:
    """What a dnf/yum transaction's command line ran, when it was a patch run; else None.

    ``upgrade``, ``update``, ``upgrade-minimal``, ``distro-sync`` without package names
    (``--security`` keeps it a patch run of the security updates; ``--advisory``,
    ``--cve``, ``--bugfix`` alone and the like pick some updates only) and dnf5's
    ``automatic`` count; ``install X`` and ``upgrade X`` do not. dnf 4 records the
    arguments only, dnf5 the program too.
    """
    args = commandline.split()
    if args and program(args[0]) in _DNF_PROGRAMS:
        args = args[1:]
    words = operands(args, _DNF_VALUE_OPTIONS)
    if not words or words[0] not in _DNF_UPGRADE_VERBS or len(words) > 1:
        return None
    flags = {a.split("=", 1)[0] for a in args if a.startswith("-")}
    if flags & _DNF_SELECTING_OPTIONS:
        return None
    security = "--security" in flags
    if flags & {"--bugfix", "--enhancement", "--newpackage"} and not security:
        return None
    return f"dnf {words[0]}" + (" --security" if security else "")


def parse_history_list(text: str, tz: timezone = timezone.utc) -> PatchRun | None:
    """The newest patch run in ``dnf|yum history list`` (dnf 4 ``|`` table or dnf5's).

    yum 3 (EL 7) lists the login user where dnf lists the command line, so it cannot tell
    a patch run from an install: then None. Transactions flagged ``*`` (aborted) or ``#``
    (non-zero exit) are left out.
    """
    runs: list[PatchRun | None] = []
    for raw in text.replace("\r", "").splitlines():
        if "Login user" in raw:
            return None
        m = _HISTORY_ROW_RE.match(raw)
        if not m or set(m.group("flags")) & {"*", "#"}:
            continue
        kind = dnf_patch_kind(m.group("cmd").strip(" |"))
        if kind is None:
            continue
        date = m.group("date")
        fmt = "%Y-%m-%d %H:%M:%S" if date.count(":") == 2 else "%Y-%m-%d %H:%M"
        stamp = datetime.strptime(date, fmt).replace(tzinfo=tz).astimezone(timezone.utc)
        runs.append(PatchRun(stamp, kind))
    return newest(runs)


def parse_needs_restarting(text: str) -> tuple[bool | None, list[str]]:
    """``needs-restarting -r`` -> (reboot needed or None when unknown, reasons)."""
    reasons = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("* "):
            reasons.append(line[2:].strip())
        elif " -> " in line:
            reasons.append(line.split(" -> ")[0].strip())
    if "Reboot is required" in text:
        return True, reasons
    if "Reboot should not be necessary" in text:
        return False, []
    return None, []


def state_from_sections(pm: str, sections: dict[str, Section]) -> PatchState:
    """Build the patch state from the sections printed by :func:`status_script`."""
    state = PatchState(manager=pm)
    check = sections.get("check-update", Section(""))
    if check.rc not in (0, 100):
        lines = [ln for ln in check.text.strip().splitlines() if ln.strip()]
        tail = lines[-1][:200] if lines else "no output"
        state.error = f"{pm} check-update failed (exit {check.rc}): {tail}"
        return state
    installed = parse_rpm_installed(sections.get("installed", Section("")).text)
    state.updates = parse_check_update(check.text)
    for upd in state.updates:
        key = f"{upd.replaces or upd.name}.{upd.arch}"
        if not upd.current and key in installed:
            upd.current = installed[key][0]
    info = sections.get("updateinfo", Section(""))
    advisories = parse_updateinfo(info.text)
    by_name: dict[str, Advisory] = {}
    for adv in advisories:
        by_name.setdefault(adv.name, adv)
    for upd in state.updates:
        match = by_name.get(upd.name)
        if match is not None:
            upd.security = True
            upd.severity = match.severity
            upd.advisory = match.advisory
    if info.rc not in (0, None):
        state.security_known = False
        state.notes.append(f"{pm} updateinfo failed (exit {info.rc}): security status unknown")
    elif not advisories and state.updates:
        state.notes.append("no security advisories in the repositories (updateinfo is empty: "
                           "CentOS/EPEL-style repos carry none)")
    reboot = sections.get("reboot", Section(""))
    state.reboot_required, state.reboot_reasons = parse_needs_restarting(reboot.text)
    if state.reboot_required is None:
        state.notes.append("needs-restarting unavailable (install dnf-utils / yum-utils)")
    tz = parse_offset(sections.get("tz", Section("")).text)
    state.last_patch_run = parse_history_list(sections.get("history", Section("")).text, tz)
    return state


def apply_command(pm: str, scope: str, exclude: Sequence[str], check_mode: bool) -> list[str]:
    """``dnf -y upgrade [--security] [--exclude=...]``; ``--assumeno`` simulates."""
    cmd = [pm, "--assumeno" if check_mode else "-y", "upgrade" if pm == "dnf" else "update"]
    if scope == "security":
        cmd.append("--security")
    cmd.extend(f"--exclude={glob}" for glob in exclude)
    return cmd
