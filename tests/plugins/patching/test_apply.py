"""``patching.apply`` against scripted hosts: check mode sends no install command, the
install and reboot sequence, pre/post commands, the reboot policy and window end."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from upkeeper.models import Result, Status
from upkeeper.store.history import History
from upkeeper.testing import FakeTransport, make_host, run_check
from upkeeper_patching.apply import PatchApply

from .helpers import data, sections

NOW = datetime(2024, 3, 23, 22, 30, tzinfo=timezone.utc)  # a Saturday
BEFORE = data("apt_list_upgradable__ubuntu2204_combined_streams.txt")
AFTER = ("Listing...\n"
         "docker-ce/jammy 5:24.0.7-1~ubuntu.22.04~jammy amd64 [upgradable from: "
         "5:24.0.5-1~ubuntu.22.04~jammy]\n"
         "snapd/jammy-updates 2.61.3+22.04 amd64 [upgradable from: 2.58+22.04]\n")
SECURITY = ["libssl3", "libxml2", "linux-generic", "linux-headers-generic",
            "linux-image-generic", "openssl", "python3-urllib3"]


class FastApply(PatchApply):
    sleep = staticmethod(lambda seconds: time.sleep(0.001))


class AptHost:
    """A scripted Ubuntu host: installing clears the security updates and flags a reboot."""

    def __init__(self, install_rc: int = 0, pre_rc: int = 0, reboot_flag: bool = True,
                 comes_back: bool = True) -> None:
        self.install_rc = install_rc
        self.pre_rc = pre_rc
        self.reboot_flag = reboot_flag
        self.comes_back = comes_back
        self.installed = False
        self.boot = "boot-1"

    def __call__(self, command: str, **kw: Any) -> Any:
        if "@@upk:apt-list" in command:
            pending = self.installed and self.reboot_flag and self.boot == "boot-1"
            return sections(apt_list=(AFTER if self.installed else BEFORE, 0),
                            reboot="1711200000\nlinux-image-generic" if pending else "",
                            history="", dpkg_log="", lists="", tz="+0000")
        if "boot_id" in command:
            return self.boot + "\n"
        if "systemctl reboot" in command:
            if self.comes_back:
                self.boot = "boot-2"
            return ""
        if "apt-get update" in command:
            return ""
        if "apt-get -s" in command:
            return data("apt-get_-s_upgrade__ubuntu2204_kept_back_esm.txt")
        if "apt-get -y" in command:
            self.installed = self.install_rc == 0
            return (self.install_rc, "Setting up libssl3 ...\n", "E: dpkg was interrupted"
                    if self.install_rc else "")
        if command.startswith("sh -c pre"):
            return (self.pre_rc, "pre ran\n")
        if command.startswith("sh -c post"):
            return "post ran\n"
        return None


def apply(transport: FakeTransport, check_mode: bool = False, now: datetime = NOW,
          **params: Any) -> Result:
    [res] = run_check(FastApply, params, transport=transport, host=transport.host,
                      history=History(":memory:"), check_mode=check_mode, now=now)
    return res


def installs(t: FakeTransport) -> list[str]:
    """Every apt-get command sent other than a simulation, refresh or the status script."""
    return [c.command for c in t.calls if "apt-get" in c.command and "@@upk" not in c.command
            and not {"-s", "update"} & set(c.command.split())]


def test_check_mode_changes_nothing_and_reports_the_simulation():
    t = FakeTransport(make_host("web1"), handler=AptHost())
    res = apply(t, check_mode=True, pre=["pre-hook"], post=["post-hook"], reboot="always")
    assert res.status is Status.OK and not res.changed
    assert installs(t) == []
    assert not any(c.sudo for c in t.calls)
    assert not any("apt-get update" in c.command or "systemctl reboot" in c.command or
                   "pre-hook" in c.command for c in t.calls)
    sim = [c.command for c in t.calls if c.command.startswith("apt-get -s")]
    assert sim == ["apt-get -s -o Debug::NoLocking=1 install --only-upgrade -- " + " ".join(
        sorted(SECURITY, key=BEFORE.index))]
    assert [u["name"] for u in res.details["would_install"]] == [
        "docker-ce", "libssl3", "openssl", "libxml2", "python3-urllib3", "snapd"]
    assert res.details["would_reboot"] == "yes"
    assert res.details["would_run"] == {"pre": ["pre-hook"], "post": ["post-hook"]}
    assert res.summary.startswith("check mode: would install 6 updates (security)")


def test_apply_security_installs_reboots_and_records_versions():
    host = AptHost()
    t = FakeTransport(make_host("web1"), handler=host)
    res = apply(t, pre=["pre-hook"], post=["post-hook"])
    assert res.status is Status.OK, res.summary
    assert res.changed
    [install] = [c for c in t.calls if "apt-get -y" in c.command]
    assert install.sudo
    argv = install.command.split()
    assert argv[:4] == ["env", "DEBIAN_FRONTEND=noninteractive", "NEEDRESTART_MODE=a",
                        "APT_LISTCHANGES_FRONTEND=none"]
    assert "Dpkg::Options::=--force-confold" in argv
    assert argv[-len(SECURITY) - 3:-len(SECURITY)] == ["install", "--only-upgrade", "--"]
    assert sorted(argv[-len(SECURITY):]) == sorted(SECURITY)
    installed = {i["name"]: i for i in res.details["installed"]}
    assert installed["libssl3"] == {"name": "libssl3", "from": "3.0.2-0ubuntu1.10",
                                    "to": "3.0.2-0ubuntu1.12"}
    assert set(installed) == set(SECURITY)
    assert res.details["rebooted"] is True and res.metrics["rebooted"] == 1
    assert res.details["reboot_required"] is False
    order = [c.command for c in t.calls]
    pre = next(i for i, c in enumerate(order) if "pre-hook" in c)
    inst = next(i for i, c in enumerate(order) if "apt-get -y" in c)
    boot = next(i for i, c in enumerate(order) if "systemctl reboot" in c)
    post = next(i for i, c in enumerate(order) if "post-hook" in c)
    assert pre < inst < boot < post
    assert [u["name"] for u in res.details["pending_after"]] == ["docker-ce", "snapd"]


def test_scope_all_without_excludes_runs_plain_upgrade_and_excludes_make_a_list():
    t = FakeTransport(make_host("web1"), handler=AptHost(reboot_flag=False))
    apply(t, scope="all")
    [install] = [c.command for c in t.calls if "apt-get -y" in c.command]
    assert install.endswith(" upgrade")
    t = FakeTransport(make_host("web1"), handler=AptHost(reboot_flag=False))
    apply(t, scope="all", exclude=["linux-*", "docker-ce"])
    [install] = [c.command for c in t.calls if "apt-get -y" in c.command]
    assert "linux-generic" not in install and "docker-ce" not in install
    assert install.endswith("libssl3 libxml2 openssl python3-urllib3 snapd")


def test_pre_failure_aborts_before_installing():
    t = FakeTransport(make_host("web1"), handler=AptHost(pre_rc=3))
    res = apply(t, pre=["pre-hook"])
    assert res.status is Status.CRIT and "pre command failed" in res.summary
    assert installs(t) == [] and not res.changed


def test_install_failure_is_crit_and_does_not_reboot():
    t = FakeTransport(make_host("web1"), handler=AptHost(install_rc=100))
    res = apply(t, reboot="always")
    assert res.status is Status.CRIT and "dpkg was interrupted" in res.summary
    assert not any("systemctl reboot" in c.command for c in t.calls)


def test_reboot_policy_never_reports_but_does_not_reboot():
    t = FakeTransport(make_host("web1"), handler=AptHost())
    res = apply(t, reboot="never")
    assert res.status is Status.OK and "reboot required (policy: never)" in res.summary
    assert res.details["rebooted"] is False and res.details["reboot_required"] is True
    assert not any("reboot" in c.command and "nohup" in c.command for c in t.calls)


def test_host_that_does_not_come_back_is_crit():
    t = FakeTransport(make_host("web1"), handler=AptHost(comes_back=False))
    res = apply(t, reboot_timeout=0.2)
    assert res.status is Status.CRIT and "did not come back" in res.summary


WINDOWS = {"maintenance_windows": ["Sat 22:00-Sun 00:05"], "timezone": "UTC"}


def test_reboot_deferred_near_the_window_end():
    t = FakeTransport(make_host("web1", vars=WINDOWS), handler=AptHost())
    res = apply(t, now=NOW.replace(hour=23, minute=55))
    assert res.status is Status.WARN and "window ends in 10 min" in res.summary
    assert res.changed and res.details["rebooted"] is False
    t = FakeTransport(make_host("web1", vars=WINDOWS), handler=AptHost())
    res = apply(t, now=NOW, reboot_min_window_minutes=15)
    assert res.status is Status.OK and res.details["rebooted"] is True


def test_nothing_to_install():
    class Clean(AptHost):
        def __call__(self, command: str, **kw: Any) -> Any:
            if "@@upk:apt-list" in command:
                return sections(apt_list=(AFTER, 0), tz="+0000")
            return super().__call__(command, **kw)

    t = FakeTransport(make_host("web1"), handler=Clean())
    res = apply(t)
    assert res.status is Status.OK and res.summary == "nothing to install (security)"
    assert installs(t) == []


def _dnf_host() -> tuple[FakeTransport, list[str]]:
    state = {"done": False}
    before = sections(check_update=(data("dnf_check-update__el9_pty_crlf_wrapped.txt"), 100),
                      updateinfo=(data("dnf_updateinfo_list_security__el9.txt"), 0),
                      installed=data("rpm_installed__el9.txt"), history="",
                      reboot=(data("needs-restarting_-r__not_required.txt"), 0))
    after = sections(check_update=("", 0), updateinfo=("", 0), installed="", history="",
                     reboot=(data("needs-restarting_-r__not_required.txt"), 0))
    sent: list[str] = []

    def handler(command: str, **kw: Any) -> Any:
        if "@@upk:check-update" in command:
            return after if state["done"] else before
        sent.append(command)
        if command.startswith("dnf -y"):
            state["done"] = True
            return "Complete!\n"
        if command.startswith("dnf --assumeno"):
            return (1, "Transaction Summary\nUpgrade  5 Packages\n", "Operation aborted.\n")
        return None

    host = make_host("db1", facts={"pkg_mgr": "dnf"})
    return FakeTransport(host, handler=handler), sent


def test_dnf_check_mode_uses_assumeno():
    t, sent = _dnf_host()
    res = apply(t, check_mode=True, exclude=["kernel*"])
    assert sent == ["dnf --assumeno upgrade --security '--exclude=kernel*'"]
    assert {u["name"] for u in res.details["would_install"]} == {
        "openssl", "openssl-libs", "python3-setuptools-wheel-with-a-rather-long-package-name"}
    assert not res.changed


def test_dnf_apply_security():
    t, sent = _dnf_host()
    res = apply(t)
    assert sent == ["dnf -y upgrade --security"]
    assert res.status is Status.OK and res.metrics["installed"] == 5
    assert res.details["rebooted"] is False


def test_zypper_reruns_after_updating_itself_and_rejects_excludes():
    calls: list[str] = []
    out = sections(updates=(data("zypper_--xmlout_list-updates__sle15.xml"), 0),
                   patches=(data("zypper_--xmlout_list-patches_--category_security__blocked.xml"),
                            0), reboot=("", 0), installtime="")

    def handler(command: str, **kw: Any) -> Any:
        if "@@upk:updates" in command:
            return out
        calls.append(command)
        if " patch " in command:
            return (103, "") if calls.count(command) == 1 else (0, "")
        return ""

    host = make_host("sles1", facts={"pkg_mgr": "zypper"})
    res = apply(FakeTransport(host, handler=handler), reboot="never", refresh=False)
    patch = [c for c in calls if " patch " in c]
    assert len(patch) == 2 and "--category security" in patch[0]
    assert res.status is Status.OK
    res = apply(FakeTransport(host, handler=handler), exclude=["kernel*"])
    assert res.status is Status.UNKNOWN and "zypper addlock" in res.summary


def _windows_host(handler: Any) -> FakeTransport:
    host = make_host("dc1", vars={"ansible_connection": "winrm"},
                     facts={"os_family": "windows"})
    return FakeTransport(host, handler=handler)


def test_windows_check_mode_only_searches():
    scripts: list[str] = []

    def handler(command: str, kind: str = "", **kw: Any) -> Any:
        scripts.append(command)
        if "$checkMode = $true" in command:
            return data("windows_apply__installed_one_failed.json").replace(
                '"Installed":[', '"Installed_":[')
        if "Microsoft.Update.Session" in command:
            return data("windows_status__ps7_list.json")
        return None

    res = apply(_windows_host(handler), check_mode=True, exclude=["KB5044020"])
    assert res.status is Status.OK and not res.changed
    assert not any("Register-ScheduledTask" in s and "$checkMode = $false" in s
                   for s in scripts)
    assert "$exclude = @('KB5044020')" in scripts[-1]
    assert [u["name"] for u in res.details["would_install"]] == ["KB5044281", "KB5044020"]


def test_windows_apply_reports_failed_updates():
    def handler(command: str, kind: str = "", **kw: Any) -> Any:
        if "$checkMode = $false" in command:
            return data("windows_apply__installed_one_failed.json")
        if "Microsoft.Update.Session" in command:
            return data("windows_status__ps7_list.json")
        return None

    res = apply(_windows_host(handler), reboot="never")
    assert res.status is Status.CRIT
    assert "KB5044020: failed" in res.summary
    assert res.details["installed"] == [{"name": "KB5044281", "title": (
        "2024-10 Cumulative Update for Windows Server 2022 for x64-based Systems (KB5044281)")}]


def test_windows_excludes_are_filtered_to_kb_numbers_and_quoted():
    from upkeeper_patching.windows import apply_script

    assert PatchApply._kbs(["KB1'; calc; '", "5044020", "kb123456", "nginx*"]) == [
        "KB5044020", "KB123456"]
    script = apply_script("security", ["KB1'x"], True, 60)
    assert "$exclude = @('KB1''X')" in script


def test_apply_is_an_action_needing_a_window():
    assert PatchApply.is_action and PatchApply.needs_window
    assert PatchApply.name == "patching.apply"


def test_failed_refresh_is_noted_and_patching_goes_on():
    class Offline(AptHost):
        def __call__(self, command: str, **kw: Any) -> Any:
            if "apt-get update" in command:
                return (100, "", "E: Failed to fetch http://mirror/dists/jammy/InRelease")
            return super().__call__(command, **kw)

    t = FakeTransport(make_host("web1"), handler=Offline(reboot_flag=False))
    res = apply(t)
    assert res.status is Status.OK and res.metrics["installed"] == len(SECURITY)
    assert "Failed to fetch" in res.details["refresh_failed"]
