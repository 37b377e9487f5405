"""apt (Debian, Ubuntu): pending updates, security pocket, reboot flag, last upgrade.

Everything runs under ``LC_ALL=C`` so the parsers see apt's English output.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone

from upkeeper_patching.model import PatchState, Section, Update, parse_epoch, parse_offset
from upkeeper_patching.runs import PatchRun, newest, operands, program

STATUS_SCRIPT = r"""LC_ALL=C; export LC_ALL
echo '@@upk:apt-list'
if command -v apt >/dev/null 2>&1; then apt list --upgradable 2>/dev/null
else echo '@@upk:apt-get'; apt-get -s -o Debug::NoLocking=1 upgrade 2>&1; fi
echo "@@upk-rc $?"
echo '@@upk:reboot'
if [ -f /var/run/reboot-required ]; then stat -c %Y /var/run/reboot-required
  cat /var/run/reboot-required.pkgs 2>/dev/null; fi
echo '@@upk:history'
zcat -f /var/log/apt/history.log* 2>/dev/null | grep -E '^(Start-Date|Commandline|Error):' |
  cut -c1-500
echo '@@upk:lists'
stat -c %Y /var/lib/apt/lists 2>/dev/null
echo '@@upk:tz'
date +%z
"""

#: Environment and options for an unattended apt run: no prompts, keep changed conffiles,
#: wait for a lock held by unattended-upgrades instead of failing at once.
APT_ENV = ("env", "DEBIAN_FRONTEND=noninteractive", "NEEDRESTART_MODE=a",
           "APT_LISTCHANGES_FRONTEND=none")
APT_OPTS = ("-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
            "-o", "DPkg::Lock::Timeout=300")

#: apt, apt-get and aptitude verbs that upgrade every upgradable package.
_APT_UPGRADE_VERBS = frozenset({"upgrade", "full-upgrade", "dist-upgrade", "safe-upgrade"})
#: Options taking a separate value (``-o Dpkg::Options::=--force-confold``).
_APT_VALUE_OPTIONS = frozenset({"-o", "--option", "-c", "--config-file", "-t",
                                "--target-release", "--default-release", "-a",
                                "--host-architecture"})

_LIST_RE = re.compile(
    r"^(?P<name>[^/\s]+)/(?P<suites>\S+)\s+(?P<new>\S+)\s+(?P<arch>\S+)"
    r"(?:\s+\[upgradable from: (?P<old>[^\]]+)\])?")
_INST_RE = re.compile(
    r"^Inst (?P<name>\S+)(?: \[(?P<old>[^\]]*)\])? \((?P<new>\S+)(?: (?P<origins>.*?))?"
    r" \[(?P<arch>[^\]]+)\]\)")


def is_security_pocket(origin: str) -> bool:
    """``bookworm-security``, ``jammy-security``, ``Debian-Security:12/...`` are security."""
    lowered = origin.strip().lower()
    return lowered.endswith("-security") or "security" in lowered.split("/")[0]


def parse_apt_list(text: str) -> list[Update]:
    """Parse ``apt list --upgradable`` (``Listing...`` and warnings tolerated)."""
    updates: list[Update] = []
    for raw in text.splitlines():
        m = _LIST_RE.match(raw.strip())
        if not m:
            continue
        suites = m.group("suites").split(",")
        security = [s for s in suites if is_security_pocket(s)]
        updates.append(Update(
            name=m.group("name"), available=m.group("new"), current=m.group("old") or "",
            arch=m.group("arch"), repo=",".join(suites), security=bool(security),
        ))
    return updates


def parse_apt_get_simulate(text: str) -> list[Update]:
    """Parse ``apt-get -s upgrade|dist-upgrade``: ``Inst`` lines and kept-back packages.

    Packages installed new (no ``[old]`` version) are returned with ``kind="new"``; the
    kept-back names (no version known) with ``kind="kept-back"``.
    """
    updates: list[Update] = []
    seen: set[str] = set()
    kept: list[str] = []
    in_kept = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("The following packages have been kept back"):
            in_kept = True
            continue
        if in_kept:
            if line.startswith("  "):
                kept.extend(line.split())
                continue
            in_kept = False
        m = _INST_RE.match(line)
        if not m:
            continue
        origins = [o.strip() for o in (m.group("origins") or "").split(",") if o.strip()]
        suites = [o.split("/", 1)[1] if "/" in o else o for o in origins]
        updates.append(Update(
            name=m.group("name"), available=m.group("new"), current=m.group("old") or "",
            arch=m.group("arch"), repo=",".join(suites),
            security=any(is_security_pocket(o) for o in origins),
            kind="package" if m.group("old") else "new",
        ))
        seen.add(m.group("name"))
    updates.extend(Update(name=n, kind="kept-back") for n in kept if n not in seen)
    return updates


def apt_patch_kind(commandline: str) -> str | None:
    """What an apt history ``Commandline:`` ran, when it was a patch run; else None.

    ``apt upgrade``, ``apt-get dist-upgrade``, ``aptitude safe-upgrade`` and
    unattended-upgrades bring in every pending (security) update; ``apt install X`` and
    ``apt upgrade X`` (apt's upgrade with package names upgrades only those) do not.
    """
    args = commandline.split()
    if not args:
        return None
    prog = program(args[0])
    if prog.startswith("unattended-upgrade"):
        return "unattended-upgrade"
    if prog not in ("apt", "apt-get", "aptitude"):
        return None
    words = operands(args[1:], _APT_VALUE_OPTIONS)
    if len(words) == 1 and words[0] in _APT_UPGRADE_VERBS:
        return f"{prog} {words[0]}"
    return None


def parse_apt_history(text: str, tz: timezone = timezone.utc) -> PatchRun | None:
    """The newest successful patch run in apt's history log.

    ``text`` is the log (all rotations, any order) or just its ``Start-Date:``,
    ``Commandline:`` and ``Error:`` lines; dates are the host's local time, ``tz`` its
    UTC offset. Entries without a command line (PackageKit, aptdaemon) cannot tell what
    they were and are left out, and so are entries that record an error.
    """
    runs: list[PatchRun | None] = []
    start: datetime | None = None
    kind: str | None = None

    def close() -> None:
        if start is not None and kind is not None:
            runs.append(PatchRun(start, kind))

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Start-Date:"):
            close()
            start, kind = _local_time(line.split(":", 1)[1], tz), None
        elif line.startswith("Commandline:"):
            kind = apt_patch_kind(line.split(":", 1)[1])
        elif line.startswith("Error:"):
            kind = None
    close()
    return newest(runs)


def _local_time(text: str, tz: timezone) -> datetime | None:
    try:
        stamp = datetime.strptime(" ".join(text.split()), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return stamp.replace(tzinfo=tz).astimezone(timezone.utc)


def state_from_sections(sections: dict[str, Section]) -> PatchState:
    """Build the patch state from the sections printed by :data:`STATUS_SCRIPT`."""
    state = PatchState(manager="apt")
    if "apt-get" in sections:
        listing = sections["apt-get"]
        state.updates = [u for u in parse_apt_get_simulate(listing.text) if u.kind != "new"]
    else:
        listing = sections.get("apt-list", Section(""))
        state.updates = parse_apt_list(listing.text)
    if listing.rc not in (0, None):
        tail = listing.text.strip().splitlines()[-1:] or ["no output"]
        state.error = f"listing upgradable packages failed (exit {listing.rc}): {tail[0][:200]}"
    reboot = sections.get("reboot", Section("")).text.strip()
    state.reboot_required = bool(reboot)
    if reboot:
        state.reboot_since = parse_epoch(reboot.splitlines()[0])
        pkgs = [p.strip() for p in reboot.splitlines()[1:] if p.strip()]
        state.reboot_reasons = sorted(set(pkgs)) or ["/var/run/reboot-required"]
    tz = parse_offset(sections.get("tz", Section("")).text)
    state.last_patch_run = parse_apt_history(sections.get("history", Section("")).text, tz)
    lists = parse_epoch(sections.get("lists", Section("")).text)
    if lists is not None:
        state.extra["lists_updated"] = lists.isoformat()
    return state


#: Debian policy package names (with an optional :arch): nothing apt reads as an option
#: (``-oAPT::Update::Pre-Invoke::=...``) or as a version/release pin (``pkg=1.0``).
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")


def check_packages(packages: Sequence[str]) -> list[str]:
    """``packages`` when every name is a Debian package name; names come from apt's own
    output, which is treated as hostile. Raises ``ValueError`` naming the first bad one."""
    for name in packages:
        if not _PACKAGE_NAME.match(name):
            raise ValueError(f"refusing {name!r} from apt's output: not a package name")
    return list(packages)


def simulate_command(packages: Sequence[str] | None = None) -> list[str]:
    """``apt-get -s`` for what :func:`apply_command` would do (safe without root)."""
    cmd = ["apt-get", "-s", "-o", "Debug::NoLocking=1"]
    if packages is None:
        return [*cmd, "upgrade"]
    return [*cmd, "install", "--only-upgrade", "--", *check_packages(packages)]


def apply_command(packages: Sequence[str] | None = None) -> list[str]:
    """``apt-get -y upgrade``, or an upgrade of only ``packages`` (security scope, excludes)."""
    cmd = [*APT_ENV, "apt-get", "-y", "-q", *APT_OPTS]
    if packages is None:
        return [*cmd, "upgrade"]
    return [*cmd, "install", "--only-upgrade", "--", *check_packages(packages)]
