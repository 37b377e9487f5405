"""zypper (SLES, openSUSE): package updates and security patches from ``--xmlout``.

While an update to the package manager itself is pending, zypper lists every other
needed patch under ``<blocked-update-list>``; those still count as pending.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone

from upkeeper_patching.model import PatchState, Section, Update, parse_epoch, parse_offset
from upkeeper_patching.runs import PatchRun, newest, operands, option_values, program

ZYPPER = ("zypper", "--non-interactive")

#: zypper exit codes that are information rather than failure.
ZYPPER_INFO_CODES = frozenset({0, 100, 101, 102, 103, 106})

STATUS_SCRIPT = r"""LC_ALL=C; export LC_ALL
echo '@@upk:updates'
zypper --non-interactive --xmlout list-updates 2>&1
echo "@@upk-rc $?"
echo '@@upk:patches'
zypper --non-interactive --xmlout list-patches --category security 2>&1
echo "@@upk-rc $?"
echo '@@upk:reboot'
zypper --non-interactive needs-rebooting >/dev/null 2>&1
echo "@@upk-rc $?"
for f in /run/reboot-needed /var/run/reboot-needed; do [ -f "$f" ] && stat -c %Y "$f" && break; done
echo '@@upk:history'
grep -h '^[0-9-]* [0-9:]*|command|' /var/log/zypp/history 2>/dev/null | cut -c1-500
echo '@@upk:tz'
date +%z
"""

#: zypper verbs that bring in every pending patch or update.
_ZYPPER_PATCH_VERBS = {"patch": "patch", "update": "update", "up": "update",
                       "dist-upgrade": "dist-upgrade", "dup": "dist-upgrade"}
#: Options that pick some patches only: the run is not a patch run.
_ZYPPER_SELECTING_OPTIONS = frozenset({"-b", "--bugzilla", "--bz", "--cve", "--issues",
                                       "--date", "--severity", "--updatestack-only",
                                       "--from"})
_ZYPPER_VALUE_OPTIONS = frozenset({
    "-R", "--root", "-c", "--config", "-D", "--reposd-dir", "-C", "--cache-dir",
    "--raw-cache-dir", "--solv-cache-dir", "--pkg-cache-dir", "--userdata", "-t", "--type",
    "-r", "--repo", "--from", "-g", "--category", "--severity", "-b", "--bugzilla", "--bz",
    "--cve", "--date",
})


class ZypperXMLError(ValueError):
    """zypper's ``--xmlout`` document could not be read."""


@dataclass
class ZypperResult:
    updates: list[Update]
    messages: list[str]


def _document(text: str) -> ET.Element:
    start = text.find("<?xml")
    if start < 0:
        start = text.find("<stream")
    if start < 0:
        raise ZypperXMLError(f"no XML in zypper output: {text.strip()[:200]!r}")
    body = text[start:]
    end = body.rfind("</stream>")
    if end >= 0:
        body = body[: end + len("</stream>")]
    try:
        return ET.fromstring(body.encode("utf-8"))
    except ET.ParseError as exc:
        raise ZypperXMLError(f"unreadable zypper XML: {exc}") from exc


def _errors(root: ET.Element) -> list[str]:
    return [(m.text or "").strip() for m in root.iter("message")
            if m.get("type") == "error" and (m.text or "").strip()]


def parse_zypper_updates(text: str) -> ZypperResult:
    """``zypper --xmlout list-updates`` -> package updates (``edition-old`` when present)."""
    root = _document(text)
    updates = []
    for el in root.iter("update"):
        if el.get("kind", "package") != "package":
            continue
        source = el.find("source")
        updates.append(Update(
            name=el.get("name", ""), available=el.get("edition", ""),
            current=el.get("edition-old", ""), arch=el.get("arch", ""),
            repo=source.get("alias", "") if source is not None else "",
            title=(el.findtext("summary") or "").strip(),
        ))
    return ZypperResult(updates, _errors(root))


def parse_zypper_patches(text: str, security_only: bool = False) -> ZypperResult:
    """``zypper --xmlout list-patches`` -> needed patches, blocked ones included.

    Patches are security updates when their ``category`` is ``security``; with
    ``security_only`` the others are dropped. Patches already applied (status other than
    needed, when zypper reports one) are skipped.
    """
    root = _document(text)
    updates = []
    for parent_tag in ("update-list", "blocked-update-list"):
        for parent in root.iter(parent_tag):
            for el in parent.iter("update"):
                if el.get("kind", "patch") != "patch":
                    continue
                if el.get("status", "needed") not in ("needed", ""):
                    continue
                category = el.get("category", "")
                security = category == "security"
                if security_only and not security:
                    continue
                updates.append(Update(
                    name=el.get("name", ""), available=el.get("edition", ""),
                    security=security, severity=el.get("severity", ""),
                    advisory=el.get("name", ""), kind="patch",
                    title=(el.findtext("summary") or "").strip(),
                    repo="blocked" if parent_tag == "blocked-update-list" else "",
                ))
    return ZypperResult(updates, _errors(root))


def zypper_patch_kind(args: list[str]) -> str | None:
    """What a zypper command (its argv, program first) ran, when it was a patch run.

    ``zypper patch`` (all needed patches, or ``--category security``), ``update`` and
    ``dist-upgrade`` without package names count; ``zypper in X``, ``up X`` and patches
    picked by bug, CVE, date or severity do not.
    """
    if not args or program(args[0]) != "zypper":
        return None
    words = operands(args[1:], _ZYPPER_VALUE_OPTIONS)
    if len(words) != 1 or words[0] not in _ZYPPER_PATCH_VERBS:
        return None
    flags = {a.strip("'").split("=", 1)[0] for a in args[1:] if a.strip("'").startswith("-")}
    if flags & _ZYPPER_SELECTING_OPTIONS:
        return None
    kind = f"zypper {_ZYPPER_PATCH_VERBS[words[0]]}"
    categories = [c for v in option_values(args, ("-g", "--category")) for c in v.split(",")]
    if categories:
        if "security" not in categories:
            return None
        kind += " --category security"
    return kind


def parse_zypp_history(text: str, tz: timezone = timezone.utc) -> PatchRun | None:
    """The newest patch run among the ``command`` lines of ``/var/log/zypp/history``.

    A line is ``2024-03-09 22:30:01|command|root@host|'zypper' '-n' 'patch'|``: the time is
    the host's local time (``tz``), the argv single-quoted word by word.
    """
    runs: list[PatchRun | None] = []
    for raw in text.splitlines():
        fields = raw.strip().split("|")
        if len(fields) < 4 or fields[1].strip() != "command":
            continue
        kind = zypper_patch_kind(re.findall(r"'([^']*)'", fields[3]) or fields[3].split())
        if kind is None:
            continue
        try:
            stamp = datetime.strptime(fields[0].strip(), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
        runs.append(PatchRun(stamp.replace(tzinfo=tz).astimezone(timezone.utc), kind))
    return newest(runs)


def state_from_sections(sections: dict[str, Section]) -> PatchState:
    """Build the patch state from the sections printed by :data:`STATUS_SCRIPT`."""
    state = PatchState(manager="zypper")
    updates = sections.get("updates", Section(""))
    patches = sections.get("patches", Section(""))
    try:
        pkgs = parse_zypper_updates(updates.text)
        sec = parse_zypper_patches(patches.text, security_only=True)
    except ZypperXMLError as exc:
        state.error = str(exc)
        return state
    failed = [(what, s.rc, r.messages) for what, s, r in
              (("list-updates", updates, pkgs), ("list-patches", patches, sec))
              if s.rc is not None and s.rc not in ZYPPER_INFO_CODES]
    if failed:
        what, rc, messages = failed[0]
        state.error = f"zypper {what} failed (exit {rc}): {'; '.join(messages) or 'no message'}"
        return state
    state.updates = pkgs.updates + sec.updates
    blocked = [u.name for u in sec.updates if u.repo == "blocked"]
    if blocked:
        state.notes.append(f"{len(blocked)} security patches wait for a package-manager update "
                           "(zypper patch installs it first, then run it again)")
    reboot = sections.get("reboot", Section(""))
    lines = reboot.text.strip().splitlines()
    if reboot.rc == 102:
        state.reboot_required = True
    elif reboot.rc == 0:
        state.reboot_required = False
    if lines:
        state.reboot_required = True
        state.reboot_since = parse_epoch(lines[0])
    if state.reboot_required:
        state.reboot_reasons = ["zypper needs-rebooting"]
    tz = parse_offset(sections.get("tz", Section("")).text)
    state.last_patch_run = parse_zypp_history(sections.get("history", Section("")).text, tz)
    return state


def apply_command(scope: str, check_mode: bool) -> list[str]:
    """``zypper patch --category security`` or ``zypper update`` (``--dry-run`` in check mode)."""
    cmd = [*ZYPPER]
    if scope == "security":
        cmd += ["patch", "--category", "security", "--auto-agree-with-licenses"]
    else:
        cmd += ["update", "--auto-agree-with-licenses"]
    if check_mode:
        cmd.append("--dry-run")
    return cmd
