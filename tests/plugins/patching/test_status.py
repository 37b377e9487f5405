"""``patching.status`` through FakeTransport (every package manager and Windows), first-seen
escalation with an injected clock, and for real on this Debian machine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from upkeeper.models import Status
from upkeeper.store.history import History
from upkeeper.testing import FakeTransport, make_host, run_check
from upkeeper.transport.local import LocalTransport
from upkeeper_patching.checks import PatchStatus

from .helpers import data, sections

NOW = datetime(2024, 3, 20, 12, 0, tzinfo=timezone.utc)
UBUNTU_LIST = data("apt_list_upgradable__ubuntu2204_combined_streams.txt")


def apt_output(listing: str = UBUNTU_LIST, reboot: str = "",
               history: str = "Start-Date: 2024-03-09  22:30:00\nCommandline: apt-get upgrade",
               ) -> str:
    return sections(apt_list=(listing, 0), reboot=reboot, history=history, dpkg_log="",
                    lists="1710900000", tz="+0000")


def apt_transport(output: str, host_vars: dict[str, object] | None = None) -> FakeTransport:
    host = make_host("web1", vars=host_vars)
    return FakeTransport(host, {"@@upk:apt-list": output})


def status(transport: FakeTransport, history: History, now: datetime = NOW,
           **params: object):
    [res] = run_check(PatchStatus, params, transport=transport, host=transport.host,
                      history=history, now=now)
    return res


def test_security_pending_warns_with_metrics_and_details(history):
    t = apt_transport(apt_output())
    res = status(t, history)
    assert res.status is Status.WARN
    assert res.metrics == {"pending_total": 9, "pending_security": 7, "reboot_required": 0,
                           "days_since_patch": 10.56}
    assert res.summary.startswith("9 updates pending (7 security)")
    libssl = next(u for u in res.details["updates"] if u["name"] == "libssl3")
    assert libssl == {"name": "libssl3", "current": "3.0.2-0ubuntu1.10",
                      "available": "3.0.2-0ubuntu1.12", "arch": "amd64",
                      "repo": "jammy-updates,jammy-security", "security": True,
                      "first_seen": NOW.isoformat()}
    # One round trip, read-only, no sudo by default.
    assert len(t.calls) == 1 and not t.calls[0].sudo
    assert t.calls[0].command.startswith("sh -c ")


def test_security_pending_too_long_escalates_to_crit(history):
    t = apt_transport(apt_output())
    assert status(t, history).status is Status.WARN
    assert status(t, history, NOW + timedelta(days=13)).status is Status.WARN
    res = status(t, history, NOW + timedelta(days=15))
    assert res.status is Status.CRIT
    assert "security updates pending 15 days (limit 14)" in res.summary
    # Patched: the clock restarts for the next security update.
    only_docker = "docker-ce/jammy 5:24.0.7-1 amd64 [upgradable from: 5:24.0.5-1]\n"
    assert status(apt_transport(apt_output(only_docker)), history,
                  NOW + timedelta(days=16)).status is Status.OK
    res = status(t, history, NOW + timedelta(days=17))
    assert res.status is Status.WARN
    assert res.details["updates"][1]["first_seen"] == (NOW + timedelta(days=17)).isoformat()


def test_first_seen_is_per_host(history):
    status(apt_transport(apt_output()), history)
    other = FakeTransport(make_host("web2"), {"@@upk:apt-list": apt_output()})
    res = status(other, history, NOW + timedelta(days=20))
    assert res.status is Status.WARN


def test_not_patched_for_too_long_is_crit_only_with_pending_updates(history):
    old = "Start-Date: 2024-01-01  00:00:00\nCommandline: apt upgrade"
    only_docker = "docker-ce/jammy 5:24.0.7-1 amd64 [upgradable from: 5:24.0.5-1]\n"
    res = status(apt_transport(apt_output(only_docker, history=old)), history,
                 crit_days_since_patch=30)
    assert res.status is Status.CRIT and "not patched for 80 days" in res.summary
    res = status(apt_transport(apt_output("Listing...\n", history=old)), history,
                 crit_days_since_patch=30)
    assert res.status is Status.OK and res.summary.startswith("up to date")
    res = status(apt_transport(apt_output(only_docker, history=old)), history,
                 crit_days_since_patch=None)
    assert res.status is Status.OK
    res = status(apt_transport(apt_output(only_docker)), history, warn_on_pending=True)
    assert res.status is Status.WARN


def test_reboot_pending_warns_after_warn_reboot_days(history):
    since = int((NOW - timedelta(days=1)).timestamp())
    t = apt_transport(apt_output("Listing...\n", reboot=f"{since}\nlibc6\n"))
    res = status(t, history)
    assert res.status is Status.OK and res.metrics["reboot_required"] == 1
    assert res.details["reboot"]["reasons"] == ["libc6"]
    res = status(t, history, NOW + timedelta(days=2, hours=1))
    assert res.status is Status.WARN and "reboot pending over 3 days" in res.summary


def test_dnf_reboot_age_kept_in_history(history):
    host = make_host("db1", facts={"pkg_mgr": "dnf", "distro": "rocky"})
    out = sections(check_update=("", 0), updateinfo=("", 0), installed="", history="",
                   reboot=(data("needs-restarting_-r__required_el9.txt"), 1), tz="+0000")
    t = FakeTransport(host, {"@@upk:check-update": out})
    res = status(t, history)
    assert res.status is Status.OK and res.details["reboot"]["since"] == NOW.isoformat()
    res = status(t, history, NOW + timedelta(days=4))
    assert res.status is Status.WARN
    assert res.details["reboot"]["since"] == NOW.isoformat()
    script = t.calls[0].command
    assert "dnf check-update" in script and "updateinfo list --security" in script


def test_yum_script_uses_yum_syntax(history):
    host = make_host("old1", facts={"pkg_mgr": "yum"})
    out = sections(check_update=(data("yum_check-update__el7_wrapped_epoch_obsoletes.txt"), 100),
                   updateinfo=(data("yum_updateinfo_list_security__el7.txt"), 0),
                   installed="", history=data("yum_history_list__el7.txt"),
                   reboot=(data("needs-restarting_-r__not_required.txt"), 0), tz="+0000")
    t = FakeTransport(host, {"@@upk:check-update": out})
    res = status(t, history, crit_days_since_patch=30)
    assert "yum check-update" in t.calls[0].command
    assert "updateinfo list security" in t.calls[0].command
    assert res.metrics["pending_security"] == 5 and res.metrics["pending_total"] == 10
    assert res.metrics["reboot_required"] == 0
    # yum 3's history names users, not commands: no patch run known, nothing seen cleared.
    assert res.status is Status.WARN and "days_since_patch" not in res.metrics


def test_zypper_blocked_security_patches_count(history):
    host = make_host("sles1", facts={"pkg_mgr": "zypper", "distro": "sles"})
    out = sections(updates=(data("zypper_--xmlout_list-updates__sle15.xml"), 0),
                   patches=(data("zypper_--xmlout_list-patches_--category_security__blocked.xml"),
                            0), reboot=("", 0), installtime=str(int(NOW.timestamp())))
    res = status(FakeTransport(host, {"@@upk:updates": out}), history)
    assert res.status is Status.WARN
    assert res.metrics["pending_security"] == 2 and res.metrics["pending_total"] == 4
    assert any("package-manager update" in n for n in res.details["notes"])


@pytest.mark.parametrize("pkg_mgr", ["apk", None])
def test_unsupported_package_manager_is_unknown(history, pkg_mgr):
    t = FakeTransport(make_host("alp", facts={"pkg_mgr": pkg_mgr}))
    res = status(t, history)
    assert res.status is Status.UNKNOWN and "not supported" in res.summary
    assert t.calls == []


def test_missing_script_output_is_unknown(history):
    t = FakeTransport(make_host("x"), {"@@upk:apt-list": (127, "", "sh: not found")})
    res = status(t, history)
    assert res.status is Status.UNKNOWN and "sh: not found" in res.summary


def _windows(name: str) -> FakeTransport:
    host = make_host("dc1", vars={"ansible_connection": "winrm"},
                     facts={"os_family": "windows", "pkg_mgr": None})
    return FakeTransport(host, {"Microsoft.Update.Session": data(name)})


def test_windows_status_through_powershell(history):
    t = _windows("windows_status__ps7_list.json")
    res = status(t, history, now=datetime(2024, 10, 20, tzinfo=timezone.utc))
    assert res.status is Status.WARN
    assert res.metrics["pending_total"] == 5 and res.metrics["pending_security"] == 2
    assert res.metrics["reboot_required"] == 1
    assert res.metrics["days_since_patch"] == pytest.approx(38.87, abs=0.01)
    kb = next(u for u in res.details["updates"] if u["name"] == "KB5044281")
    assert kb["severity"] == "Critical" and kb["classification"] == "Security Updates"
    assert [c.kind for c in t.calls] == ["powershell"]
    assert "IsInstalled=0 and IsHidden=0" in t.calls[0].command


@pytest.mark.parametrize(("name", "reason"), [
    ("windows_status__wsus_unreachable.json", "WSUS http://wsus.client.local:8530"),
    ("windows_status__service_disabled.json", "service (wuauserv) is disabled"),
])
def test_windows_update_unavailable_is_unknown(history, name, reason):
    res = status(_windows(name), history)
    assert res.status is Status.UNKNOWN and reason in res.summary


def test_windows_powershell_failure_is_unknown(history):
    host = make_host("dc1", facts={"os_family": "windows"})
    t = FakeTransport(host, {"Microsoft.Update.Session": (1, "", "Access is denied")})
    res = status(t, history)
    assert res.status is Status.UNKNOWN and "Access is denied" in res.summary


@pytest.mark.slow
def test_real_run_on_this_machine(history):
    host = make_host("localhost", vars={"ansible_connection": "local"})
    transport = LocalTransport(host)
    host.facts = transport.gather_facts()
    if host.facts.get("pkg_mgr") != "apt":
        pytest.skip("needs an apt machine")
    [res] = run_check(PatchStatus, {}, host=host, transport=transport, history=history)
    assert res.status is not Status.UNKNOWN, res.summary
    listed = LocalTransport(host).run("LC_ALL=C apt list --upgradable 2>/dev/null")
    expected = sum(1 for line in listed.stdout.splitlines() if "[upgradable from:" in line)
    assert res.metrics["pending_total"] == expected
    assert res.metrics["pending_security"] == sum(
        1 for u in res.details["updates"] if u["security"])
    assert res.details["manager"] == "apt"
    assert "reboot_required" in res.metrics
    if res.metrics["pending_security"]:
        assert res.status in (Status.WARN, Status.CRIT)


def test_sudo_param_gathers_as_root(history):
    t = apt_transport(apt_output())
    status(t, history, sudo=True)
    assert [c.sudo for c in t.calls] == [True]


def test_days_since_patch_at_the_limit_is_crit(history):
    # The one rule of upkeeper.measures.grade: at the threshold is CRIT (was: past it).
    patched = datetime(2024, 3, 9, 22, 30, tzinfo=timezone.utc)
    t = apt_transport(apt_output())
    just_under = status(t, history, patched + timedelta(days=20, minutes=-1),
                        crit_days_since_patch=20, crit_security_days=100)
    assert just_under.status is Status.WARN, just_under.summary
    at = status(t, history, patched + timedelta(days=20), crit_days_since_patch=20,
                crit_security_days=100)
    assert at.status is Status.CRIT and "not patched for 20 days (limit 20)" in at.summary


def test_old_param_names_still_work_with_a_warning(history):
    from upkeeper.measures import UpkeeperDeprecationWarning
    from upkeeper_patching.checks import StatusParams

    for old, new in (("security_crit_days", "crit_security_days"),
                     ("max_days_since_patch", "crit_days_since_patch"),
                     ("reboot_warn_days", "warn_reboot_days")):
        with pytest.warns(UpkeeperDeprecationWarning,
                          match=f"patching.status: param '{old}' is deprecated since API "
                                f"1.1, use '{new}'"):
            assert getattr(StatusParams(**{old: 7}), new) == 7
    with pytest.raises(ValueError, match="give only 'warn_reboot_days'"):
        StatusParams(reboot_warn_days=1, warn_reboot_days=2)
    # Through a run, the old name still takes effect.
    t = apt_transport(apt_output())
    status(t, history)
    with pytest.warns(UpkeeperDeprecationWarning, match="security_crit_days"):
        res = status(t, history, NOW + timedelta(days=3), security_crit_days=2)
    assert res.status is Status.CRIT and "(limit 2)" in res.summary
