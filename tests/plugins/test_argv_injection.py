"""No value from a playbook or from command output is ever read as an option by a tool.

Each param of a built-in that reaches an argv gets option-looking and control-character
values: it must be refused with an error naming the param, or reach the tool as an
operand (after ``--``) or as the value of ``--option=value``, never as an option.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from pydantic import ValidationError

from upkeeper import CommandResult, Status
from upkeeper.testing import FakeTransport, make_host, run_check
from upkeeper_backup.borg import BorgCheck
from upkeeper_backup.files import FilesCheck
from upkeeper_backup.restic import ResticCheck
from upkeeper_disk.smart import DiskSmart
from upkeeper_patching.apply import PatchApply

HOSTILE = ["-delete", "--help", "-rf", "--repo=/x", "/srv/a\nb", "/srv/a\x00b"]
RESTIC = {"repository": "/srv/restic", "password": "pw-0001", "integrity": True,
          "restore_sample": 1}
BORG = {"repository": "/srv/borg", "passphrase": "pw-0002", "integrity": True,
        "restore_sample": 1}

Build = Callable[[str], dict[str, Any]]
#: (check, param as named in errors, params carrying the value)
PARAMS: list[tuple[Any, str, Build]] = [
    (ResticCheck, "repository", lambda v: {**RESTIC, "repository": v}),
    (ResticCheck, "host", lambda v: {**RESTIC, "host": v}),
    (ResticCheck, "paths", lambda v: {**RESTIC, "paths": [v]}),
    (ResticCheck, "tags", lambda v: {**RESTIC, "tags": ["daily", v]}),
    (ResticCheck, "restore_sample", lambda v: {**RESTIC, "restore_sample": [v]}),
    (ResticCheck, "restic_bin", lambda v: {**RESTIC, "restic_bin": v}),
    (ResticCheck, "password_file", lambda v: {**RESTIC, "password": None, "password_file": v}),
    (ResticCheck, "env", lambda v: {**RESTIC, "env": {v: "x"}}),
    (BorgCheck, "repository", lambda v: {**BORG, "repository": v}),
    (BorgCheck, "glob_archives", lambda v: {**BORG, "glob_archives": v}),
    (BorgCheck, "restore_sample", lambda v: {**BORG, "restore_sample": [v]}),
    (BorgCheck, "borg_bin", lambda v: {**BORG, "borg_bin": v}),
    (FilesCheck, "path", lambda v: {"path": f"{v}/*.gz"}),
    (FilesCheck, "path", lambda v: {"path": f"/var/backups/{v}"}),
    (DiskSmart, "devices", lambda v: {"devices": [v]}),
    (DiskSmart, "devices", lambda v: {"devices": [{"name": v}]}),
    (DiskSmart, "devices", lambda v: {"devices": [{"name": "/dev/sda", "type": v}]}),
    (PatchApply, "exclude", lambda v: {"exclude": [v]}),
]


class ArgvTransport(FakeTransport):
    """Keeps each command as the argv the tool would get; answers every command (exit
    127 where nothing matches) so the check goes as far as it can."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(make_host("web01"), strict=False, **kw)
        self.argvs: list[list[str]] = []

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            sudo: bool = False, stdin: str | bytes | None = None,
            env: Mapping[str, str] | None = None) -> CommandResult:
        self.argvs.append(list(command) if not isinstance(command, str)
                          else shlex.split(command))
        return super().run(command, timeout=timeout, sudo=sudo, stdin=stdin, env=env)


#: Options whose value is always the next element, whatever it looks like.
CONSUMES_NEXT = {"find": {"-name"}}


def as_option(argv: Sequence[str], value: str) -> bool:
    """True when ``value`` stands in ``argv`` where a tool parses options: a whole
    element before any ``--``, unless an option that always takes the next element
    precedes it (find's -name). ``--opt=value`` and elements after ``--`` are data."""
    takes_next = CONSUMES_NEXT.get(argv[0] if argv else "", set())
    for i, arg in enumerate(argv):
        if arg == "--":
            return False
        if arg == value and not (i and argv[i - 1] in takes_next):
            return True
    return False


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
@pytest.mark.parametrize("check,param,build", PARAMS,
                         ids=[f"{c.name}.{p}-{i}" for i, (c, p, _) in enumerate(PARAMS)])
def test_option_looking_values_never_become_options(check, param, build, value):
    params = build(value)
    try:
        check.Params.model_validate(params)
    except ValidationError as exc:
        locs = [str(e["loc"][0]) for e in exc.errors()]
        assert param in locs, f"error does not name {param}: {exc}"
        assert param in str(exc)
        return
    fake = ArgvTransport(handler=lambda command, **kw: (0, "", ""))
    run_check(check, params, transport=fake, host=fake.host)
    assert fake.argvs, "nothing ran"
    for argv in fake.argvs:
        assert not as_option(argv, value), f"{value!r} reached {argv} as an option"


def test_values_from_command_output_stay_operands():
    """Hostile tool output: a restic snapshot ID, a smartctl device, an apt package."""
    snaps = [{"time": "2026-11-26T02:00:00Z", "tree": "t", "paths": ["/srv"],
              "hostname": "web01", "id": "--help", "short_id": "--help"}]
    ls = json.dumps({"struct_type": "node", "type": "file", "path": "/srv/-rf", "size": 5})
    fake = ArgvTransport(responses={"snapshots": json.dumps(snaps), " ls ": ls,
                                    "mktemp": "/tmp/upkeeper-restore.abcd1234\n"})
    run_check(ResticCheck, {**RESTIC, "restore_sample": 1}, transport=fake, host=fake.host)
    tool = [a for a in fake.argvs if "restic" in a and "snapshots" not in a]
    assert {a[a.index("restic") + 1] for a in tool} >= {"stats", "check", "ls", "dump",
                                                        "restore"}
    for argv in tool:
        assert not as_option(argv, "--help"), argv
        assert not as_option(argv, "/srv/-rf"), argv

    scan = {"devices": [{"name": "-X", "type": "sat", "protocol": "ATA"},
                        {"name": "--scan", "type": "--help", "protocol": "ATA"}]}
    fake = ArgvTransport(responses={"--scan-open": json.dumps(scan)})
    run_check(DiskSmart, {}, transport=fake, host=fake.host)
    smartctl = [shlex.split(part) for part in fake.calls[1].command.split("; ")
                if part.startswith("smartctl -a")]
    assert len(smartctl) == 2
    for argv in smartctl:
        for hostile in ("-X", "--scan", "--help"):
            assert not as_option(argv, hostile), argv
    assert smartctl[0][-2:] == ["--", "-X"] and smartctl[1][-2:] == ["--", "--scan"]
    assert "--device=--help" in smartctl[1]


def test_apt_output_naming_an_option_is_refused_not_installed():
    from upkeeper_patching import apt

    with pytest.raises(ValueError, match="not a package name"):
        apt.apply_command(["openssl", "-oAPT::Update::Pre-Invoke::=touch /tmp/pwned"])
    with pytest.raises(ValueError, match="not a package name"):
        apt.simulate_command(["bash=4.0-1"])
    assert apt.apply_command(["libssl3", "linux-image-6.1.0-13-amd64:amd64"])[-3:] == [
        "--", "libssl3", "linux-image-6.1.0-13-amd64:amd64"]


def test_windows_values_are_single_quoted():
    host = make_host("win01", facts={"os_family": "windows"})
    fake = FakeTransport(host, {"Get-ChildItem": "[]"})
    hostile = "D:\\x'; Remove-Item -Recurse C:\\; '\\*.bak"
    [r] = run_check(FilesCheck, {"path": hostile}, transport=fake, host=host)
    assert r.status is Status.CRIT
    assert "-LiteralPath 'D:\\x''; Remove-Item -Recurse C:\\; '''" in fake.calls[0].command
