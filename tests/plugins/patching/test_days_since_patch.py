"""``days_since_patch`` means days since the pending security updates were last brought to
zero (or the host last fully upgraded): installing a package that pulls upgraded
dependencies must not reset it (issue 13, item 5). Apt, dnf, zypper and Windows from
realistic logs, and the state fallback where history cannot tell."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from upkeeper.models import Result, Status
from upkeeper.store.history import History
from upkeeper.testing import FakeTransport, make_host, run_check
from upkeeper_patching.checks import PatchStatus

from .helpers import data, sections

NOW = datetime(2024, 3, 20, 12, 0, tzinfo=timezone.utc)
UBUNTU_LIST = data("apt_list_upgradable__ubuntu2204_combined_streams.txt")  # 7 security
ONLY_DOCKER = "Listing...\ndocker-ce/jammy 5:24.0.7-1 amd64 [upgradable from: 5:24.0.5-1]\n"


def check(transport: FakeTransport, history: History, now: datetime = NOW,
          **params: object) -> Result:
    [res] = run_check(PatchStatus, params, transport=transport, host=transport.host,
                      history=history, now=now)
    return res


def apt_host(listing: str, history_log: str) -> FakeTransport:
    out = sections(apt_list=(listing, 0), reboot="", history=history_log, lists="1710900000",
                   tz="+0000")
    return FakeTransport(make_host("web1"), {"@@upk:apt-list": out})


def test_apt_install_pulling_upgrades_does_not_reset_days_since_patch(history):
    # The full log: the newest entry installed postgresql and upgraded libpq5 and libssl3
    # on 03-12 while security updates stayed pending; the last `apt-get upgrade` was 02-20.
    res = check(apt_host(UBUNTU_LIST, data("apt_history__ubuntu2204.log")), history,
                crit_days_since_patch=21)
    assert res.metrics["pending_security"] == 7
    assert res.metrics["days_since_patch"] == pytest.approx(28.62, abs=0.01)
    assert res.status is Status.CRIT and "not patched for 29 days (limit 21)" in res.summary
    assert res.details["last_patch_run"] == {"at": "2024-02-20T21:03:11+00:00",
                                             "kind": "apt-get upgrade"}
    assert res.details["last_patched_from"] == "history"


def test_this_machine_93_security_updates_pending_after_an_install(history):
    # Captured here: 93 security updates pending, the last `apt-get upgrade` in June 2025,
    # and an `apt-get install` that upgraded packages on the day of the capture.
    t = FakeTransport(make_host("debian12"),
                      {"@@upk:apt-list": data("status_script__apt_debian12.txt")})
    now = datetime(2026, 12, 6, 2, 10, tzinfo=timezone.utc)
    res = check(t, history, now)
    assert res.metrics["pending_security"] == 93
    assert res.metrics["days_since_patch"] == pytest.approx(529.48, abs=0.01)
    assert res.status is Status.CRIT and "not patched for 529 days" in res.summary


def test_dnf_install_pulling_upgrades_does_not_reset_days_since_patch(history):
    host = make_host("db1", facts={"pkg_mgr": "dnf"})
    out = sections(check_update=(data("dnf_check-update__el9_pty_crlf_wrapped.txt"), 100),
                   updateinfo=(data("dnf_updateinfo_list_security__el9.txt"), 0),
                   installed=data("rpm_installed__el9.txt"),
                   history=data("dnf_history_list__el9_install_pulls_upgrades.txt"),
                   reboot=(data("needs-restarting_-r__not_required.txt"), 0), tz="+0000")
    res = check(FakeTransport(host, {"@@upk:check-update": out}), history)
    assert res.metrics["days_since_patch"] == pytest.approx(24.56, abs=0.01)
    assert res.details["last_patch_run"]["kind"] == "dnf upgrade --security"


def test_zypper_install_does_not_reset_days_since_patch(history):
    host = make_host("sles1", facts={"pkg_mgr": "zypper"})
    out = sections(updates=(data("zypper_--xmlout_list-updates__sle15.xml"), 0),
                   patches=(data("zypper_--xmlout_list-patches_--category_security__blocked.xml"),
                            0), reboot=("", 0), history=data("zypp_history__sle15.txt"),
                   tz="+0000")
    res = check(FakeTransport(host, {"@@upk:updates": out}), history)
    assert res.metrics["days_since_patch"] == pytest.approx(19.42, abs=0.01)
    assert res.details["last_patch_run"]["kind"] == "zypper patch --category security"


def test_windows_newest_hotfix_is_not_the_last_security_install(history):
    status = json.loads(data("windows_status__ps7_list.json"))
    status[0]["LastHotfix"], status[0]["LastInstalled"] = "KB5044020", "2024-10-15T03:02:11Z"
    host = make_host("dc1", vars={"ansible_connection": "winrm"},
                     facts={"os_family": "windows"})
    t = FakeTransport(host, {"Microsoft.Update.Session": json.dumps(status)})
    res = check(t, history, datetime(2024, 10, 20, tzinfo=timezone.utc))
    assert res.metrics["days_since_patch"] == pytest.approx(38.87, abs=0.01)
    assert res.details["last_patch_run"]["kind"] == "Windows Update KB5042881"


def yum_host(security: bool) -> FakeTransport:
    host = make_host("old1", facts={"pkg_mgr": "yum"})
    info = data("yum_updateinfo_list_security__el7.txt") if security else ""
    out = sections(check_update=(data("yum_check-update__el7_wrapped_epoch_obsoletes.txt"), 100),
                   updateinfo=(info, 0), installed="", history=data("yum_history_list__el7.txt"),
                   reboot=("", 0), tz="+0000")
    return FakeTransport(host, {"@@upk:check-update": out})


def test_without_history_the_first_run_seeing_no_security_updates_counts(history):
    # yum 3 cannot say which transaction was a patch run: the check's own observations do.
    res = check(yum_host(security=True), history)
    assert "days_since_patch" not in res.metrics and res.details["last_patched"] is None
    day = timedelta(days=1)
    res = check(yum_host(security=True), history, NOW + 3 * day)
    assert "days_since_patch" not in res.metrics
    # Security updates went in between the runs (by hand, one by one): cleared now.
    res = check(yum_host(security=False), history, NOW + 4 * day)
    assert res.metrics["days_since_patch"] == 0
    assert res.details["last_patched_from"] == "observed"
    assert check(yum_host(security=False), history, NOW + 6 * day).metrics[
        "days_since_patch"] == 2
    # New security updates arrive and stay: the clock runs from the day they were cleared.
    res = check(yum_host(security=True), history, NOW + 50 * day)
    assert res.metrics["days_since_patch"] == 46
    assert res.status is Status.CRIT and "not patched for 46 days (limit 45)" in res.summary


def test_a_patch_run_newer_than_the_observed_clearing_wins(history):
    old = "Start-Date: 2024-01-02  03:00:00\nCommandline: apt-get upgrade\n"
    res = check(apt_host(ONLY_DOCKER, old), history)
    # First run, nothing security pending: credited to the last patch run, not to now.
    assert res.metrics["days_since_patch"] == pytest.approx(78.38, abs=0.01)
    res = check(apt_host(UBUNTU_LIST, old), history, NOW + timedelta(days=1))
    assert res.metrics["days_since_patch"] == pytest.approx(79.38, abs=0.01)
    newer = old + "Start-Date: 2024-03-25  03:00:00\nCommandline: /usr/bin/unattended-upgrade\n"
    res = check(apt_host(UBUNTU_LIST, newer), history, NOW + timedelta(days=6))
    assert res.metrics["days_since_patch"] == pytest.approx(1.375, abs=0.01)
    assert res.details["last_patch_run"]["kind"] == "unattended-upgrade"


def test_security_unknown_means_nothing_pending(history):
    # updateinfo failed: zero "security" updates is not zero pending security updates.
    host = make_host("db1", facts={"pkg_mgr": "dnf"})
    out = sections(check_update=(data("dnf_check-update__el9_pty_crlf_wrapped.txt"), 100),
                   updateinfo=("", 1), installed="", history="", reboot=("", 0), tz="+0000")
    res = check(FakeTransport(host, {"@@upk:check-update": out}), history)
    assert res.metrics["pending_security"] == 0
    assert "days_since_patch" not in res.metrics


def test_without_history_a_full_upgrade_seen_counts_where_security_is_always_zero(history):
    # CentOS 7 with EPEL: no advisories, so never a security update pending; the run that
    # finds nothing pending at all marks the full upgrade.
    res = check(yum_host(security=False), history)
    assert res.metrics["days_since_patch"] == 0  # first run: nothing pending that is security
    res = check(yum_host(security=False), history, NOW + timedelta(days=30))
    assert res.metrics["days_since_patch"] == 30
    host = make_host("old1", facts={"pkg_mgr": "yum"})
    nothing = sections(check_update=("", 0), updateinfo=("", 0), installed="", history="",
                       reboot=("", 0), tz="+0000")
    res = check(FakeTransport(host, {"@@upk:check-update": nothing}), history,
                NOW + timedelta(days=31))
    assert res.metrics["days_since_patch"] == 0 and res.summary.startswith("up to date")
    res = check(yum_host(security=False), history, NOW + timedelta(days=40))
    assert res.metrics["days_since_patch"] == 9
