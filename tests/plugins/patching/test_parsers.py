"""Patching parsers on captured (apt, this machine) and written (dnf, yum, zypper, Windows)
outputs under tests/data/patching."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from upkeeper.powershell import as_list, parse_ps_json
from upkeeper_patching import apt, dnf, windows, zypper
from upkeeper_patching.model import parse_offset, rpm_name, split_sections
from upkeeper_patching.runs import PatchRun

from .helpers import data, sections

UTC = timezone.utc


def test_apt_list_captured_here_matches_apt_get_simulation():
    listed = apt.parse_apt_list(data("apt_list_upgradable__debian12.txt"))
    simulated = apt.parse_apt_get_simulate(data("apt-get_-s_upgrade__debian12.txt"))
    assert len(listed) == 135
    assert {u.name for u in listed} == {u.name for u in simulated}
    by_name = {u.name: u for u in simulated}
    for u in listed:
        assert (u.current, u.available) == (by_name[u.name].current, by_name[u.name].available)
        assert u.security == by_name[u.name].security, u.name
    assert sum(u.security for u in listed) == 81
    bash = next(u for u in listed if u.name == "bash")
    assert (bash.current, bash.available, bash.arch, bash.security) == (
        "5.2.15-2+b8", "5.2.15-2+b13", "amd64", False)
    assert next(u for u in listed if u.name == "apt").security


def test_apt_get_double_pocket_line_is_security():
    upd = apt.parse_apt_get_simulate(data("apt-get_-s_upgrade__debian12.txt"))
    gcrypt = next(u for u in upd if u.name == "libgcrypt20")
    assert gcrypt.security and gcrypt.repo == "oldstable,oldstable-security"


def test_apt_ubuntu_kept_back_esm_and_origin_with_space():
    upd = apt.parse_apt_get_simulate(data("apt-get_-s_upgrade__ubuntu2204_kept_back_esm.txt"))
    by = {u.name: u for u in upd}
    assert by["docker-ce"].current == "5:24.0.5-1~ubuntu.22.04~jammy"
    assert not by["docker-ce"].security and not by["snapd"].security
    assert by["libxml2"].security  # ESM apps pocket
    assert by["libssl3"].security
    assert [u.name for u in upd if u.kind == "kept-back"] == [
        "linux-generic", "linux-headers-generic", "linux-image-generic"]


def test_apt_list_combined_streams_ignores_warning_and_notes():
    upd = apt.parse_apt_list(data("apt_list_upgradable__ubuntu2204_combined_streams.txt"))
    assert len(upd) == 9
    assert sum(u.security for u in upd) == 7
    assert {u.name for u in upd if not u.security} == {"docker-ce", "snapd"}


def test_apt_new_package_in_dist_upgrade_is_marked_new():
    upd = apt.parse_apt_get_simulate(data("apt-get_-s_dist-upgrade__new_kernel.txt"))
    assert [(u.name, u.kind, u.security) for u in upd] == [
        ("linux-image-6.1.0-28-amd64", "new", True), ("linux-image-amd64", "package", True)]


def test_apt_nothing_to_do():
    assert apt.parse_apt_get_simulate(data("apt-get_-s_upgrade__nothing_to_do.txt")) == []
    assert apt.parse_apt_list("Listing...\n") == []


def test_apt_history_last_patch_run_is_not_an_install_that_pulled_upgrades():
    # After the upgrade on 02-20: a failed full-upgrade, a PackageKit entry without a
    # command line, `apt upgrade vim`, `--only-upgrade install` of two packages and an
    # install that upgraded libssl3: none of them brought every pending update in.
    text = data("apt_history__ubuntu2204.log")
    run = apt.parse_apt_history(text)
    assert run == PatchRun(datetime(2024, 2, 20, 21, 3, 11, tzinfo=UTC), "apt-get upgrade")
    cet = parse_offset("+0100")
    assert apt.parse_apt_history(text, cet).when == datetime(2024, 2, 20, 20, 3, 11,
                                                              tzinfo=UTC)
    # Only the lines the status script keeps, rotated files in any order.
    kept = [ln for ln in text.splitlines()
            if ln.startswith(("Start-Date:", "Commandline:", "Error:"))]
    assert apt.parse_apt_history("\n".join(kept[12:] + kept[:12])) == run


@pytest.mark.parametrize(("commandline", "kind"), [
    ("/usr/bin/unattended-upgrade", "unattended-upgrade"),
    ("apt-get -qqy upgrade", "apt-get upgrade"),
    ("apt full-upgrade -y", "apt full-upgrade"),
    ("apt-get -o Dpkg::Options::=--force-confold -t bookworm-backports dist-upgrade",
     "apt-get dist-upgrade"),
    ("aptitude -y safe-upgrade", "aptitude safe-upgrade"),
    ("apt install htop", None),
    ("apt upgrade firefox-esr", None),
    ("apt-get -y --only-upgrade install libssl3 openssl", None),
    ("apt-get -o Dir::Etc::sourcelist=/tmp/x -o APT::Sandbox::User=root install -y --no-upgrade"
     " --no-download gdb", None),
    ("apt-get remove --purge nano", None),
    ("dpkg -i ./thing.deb", None),
    ("", None),
])
def test_apt_patch_kind(commandline, kind):
    assert apt.apt_patch_kind(commandline) == kind


def test_apt_status_sections_captured_on_this_machine():
    state = apt.state_from_sections(split_sections(data("status_script__apt_debian12.txt")))
    assert state.error is None
    assert len(state.updates) == 143 and len(state.security) == 93
    assert state.reboot_required is False
    # This machine's own log: `apt-get -qqy upgrade` once, then only `apt-get install`
    # runs, the newest of which pulled upgrades while 93 security updates stayed pending.
    assert state.last_patch_run == PatchRun(datetime(2025, 6, 24, 14, 36, 25, tzinfo=UTC),
                                            "apt-get upgrade")


def test_apt_reboot_required_with_packages():
    out = sections(apt_list=("Listing...", 0), reboot="1700000000\nlinux-image-6.1.0-28-amd64\n"
                   "libc6\nlibc6\n", tz="+0000")
    state = apt.state_from_sections(split_sections(out))
    assert state.reboot_required is True
    assert state.reboot_since == datetime.fromtimestamp(1700000000, UTC)
    assert state.reboot_reasons == ["libc6", "linux-image-6.1.0-28-amd64"]


def test_yum_check_update_wrapped_epochs_obsoletes_security_lines():
    upd = dnf.parse_check_update(data("yum_check-update__el7_wrapped_epoch_obsoletes.txt"))
    names = [u.name for u in upd]
    assert names.count("kernel") == 1
    assert len(upd) == 10
    java = next(u for u in upd if u.name.startswith("java-1.8.0"))
    assert (java.arch, java.available, java.repo) == ("x86_64", "1:1.8.0.402.b06-1.el7_9",
                                                      "updates")
    xvfb = next(u for u in upd if u.name == "xorg-x11-server-Xvfb")
    assert xvfb.repo == "updates"
    grub = next(u for u in upd if u.kind == "obsoletes")
    assert (grub.name, grub.replaces, grub.current) == (
        "grub2-common", "grub2-efi-common", "1:2.02-0.86.el7.centos")
    assert not any(n.startswith(("Security", "Loaded", "manager")) for n in names)


def test_dnf_check_update_pty_crlf_wrapped():
    upd = dnf.parse_check_update(data("dnf_check-update__el9_pty_crlf_wrapped.txt"))
    assert len(upd) == 9
    long = next(u for u in upd if u.name.startswith("python3-setuptools"))
    assert (long.available, long.repo) == ("53.0.0-12.el9_4.1.with.a.long.release", "appstream")
    assert all("\r" not in u.repo for u in upd)


@pytest.mark.parametrize(("name", "expected"), [
    ("yum_updateinfo_list_security__el7.txt",
     [("RHSA-2024:0605", "Important", "bind-libs"), ("RHSA-2024:0605", "Important", "bind-utils"),
      ("RHSA-2024:1249", "Important", "kernel"), ("RHSA-2024:1249", "Important", "python-perf"),
      ("RHSA-2023:3742", "Moderate", "openssl-libs")]),
    ("dnf5_updateinfo_list_security__fedora40.txt",
     [("FEDORA-2024-1a2b3c4d5e", "Important", "curl"),
      ("FEDORA-2024-1a2b3c4d5e", "Important", "libcurl"),
      ("FEDORA-2024-9f8e7d6c5b", "Moderate", "libxml2")]),
])
def test_updateinfo(name, expected):
    got = [(a.advisory, a.severity, a.name) for a in dnf.parse_updateinfo(data(name))]
    assert got == expected


def test_rpm_name_of_nevra_with_epoch_and_long_release():
    assert rpm_name("openssl-libs-1:3.0.7-28.el9_4.x86_64") == "openssl-libs"
    assert rpm_name("python3-setuptools-wheel-with-a-rather-long-package-name-53.0.0-"
                    "12.el9_4.1.with.a.long.release.noarch") == (
        "python3-setuptools-wheel-with-a-rather-long-package-name")


def test_dnf_state_joins_security_and_installed_versions():
    out = sections(check_update=(data("dnf_check-update__el9_pty_crlf_wrapped.txt"), 100),
                   updateinfo=(data("dnf_updateinfo_list_security__el9.txt"), 0),
                   installed=data("rpm_installed__el9.txt"),
                   history=data("dnf_history_list__el9.txt"),
                   reboot=(data("needs-restarting_-r__required_el9.txt"), 1), tz="-0500")
    state = dnf.state_from_sections("dnf", split_sections(out))
    assert state.error is None
    sec = {u.name: u for u in state.security}
    assert set(sec) == {"kernel", "kernel-core", "openssl", "openssl-libs",
                        "python3-setuptools-wheel-with-a-rather-long-package-name"}
    assert (sec["openssl"].current, sec["openssl"].available) == ("1:3.0.7-27.el9",
                                                                  "1:3.0.7-28.el9_4")
    assert sec["openssl"].severity == "Moderate" and sec["openssl"].advisory == "RLSA-2024:6783"
    assert sec["kernel"].current == "5.14.0-427.13.1.el9_4"
    grub = next(u for u in state.updates if u.kind == "obsoletes")
    assert grub.current == "1:2.06-77.el9"
    assert state.reboot_required is True and state.reboot_reasons == ["kernel", "systemd"]
    assert state.last_patch_run == PatchRun(datetime(2024, 3, 10, 3, 30, tzinfo=UTC),
                                            "dnf upgrade --security")
    assert state.security_known


def test_dnf_check_update_failure_is_an_error():
    out = sections(check_update=("Error: Failed to download metadata for repo 'baseos'", 1))
    state = dnf.state_from_sections("dnf", split_sections(out))
    assert "exit 1" in (state.error or "") and "baseos" in (state.error or "")


def test_yum_without_history_knows_no_patch_run():
    # The newest package install time is no patch time: an install moves it too.
    out = sections(check_update=("", 0), updateinfo=("", 0),
                   installed=data("rpm_installed__el9.txt"),
                   history="You need to be root to perform this command.",
                   reboot=(data("needs-restarting_-r__plugin_missing.txt"), 1))
    state = dnf.state_from_sections("yum", split_sections(out))
    assert state.updates == []
    assert state.last_patch_run is None
    assert state.reboot_required is None


def test_dnf_updateinfo_failure_cannot_tell_security():
    out = sections(check_update=(data("dnf_check-update__el9_pty_crlf_wrapped.txt"), 100),
                   updateinfo=("", 0), installed="", history="", reboot=("", 0))
    assert dnf.state_from_sections("dnf", split_sections(out)).security_known
    out = sections(check_update=(data("dnf_check-update__el9_pty_crlf_wrapped.txt"), 100),
                   updateinfo=("", 1), installed="", history="", reboot=("", 0))
    assert not dnf.state_from_sections("dnf", split_sections(out)).security_known


@pytest.mark.parametrize(("name", "expected"), [
    ("needs-restarting_-r__required_el9.txt", (True, ["kernel", "systemd"])),
    ("needs-restarting_-r__required_el7_yum-utils.txt", (True, ["kernel", "glibc"])),
    ("needs-restarting_-r__not_required.txt", (False, [])),
    ("needs-restarting_-r__plugin_missing.txt", (None, [])),
])
def test_needs_restarting(name, expected):
    assert dnf.parse_needs_restarting(data(name)) == expected


def test_dnf_history_patch_run_is_not_an_install_that_pulled_upgrades():
    # 31 installed a package and upgraded dependencies, 30 has no command line
    # (dnf-automatic, PackageKit), 29 upgraded one package, 28 one advisory, 27 aborted.
    run = dnf.parse_history_list(data("dnf_history_list__el9_install_pulls_upgrades.txt"))
    assert run == PatchRun(datetime(2024, 2, 24, 22, 30, tzinfo=UTC), "dnf upgrade --security")


def test_dnf5_history_list_without_cell_separators():
    run = dnf.parse_history_list(data("dnf5_history_list__fedora41.txt"), parse_offset("+0100"))
    assert run == PatchRun(datetime(2024, 11, 18, 20, 0, 11, tzinfo=UTC), "dnf upgrade")


def test_yum3_history_lists_users_not_command_lines():
    assert dnf.parse_history_list(data("yum_history_list__el7.txt")) is None


@pytest.mark.parametrize(("commandline", "kind"), [
    ("-y update", "dnf update"),
    ("upgrade -y --security", "dnf upgrade --security"),
    ("upgrade-minimal --security -y", "dnf upgrade-minimal --security"),
    ("--exclude=kernel* upgrade -y", "dnf upgrade"),
    ("distro-sync -y", "dnf distro-sync"),
    ("dnf5 automatic --timer", "dnf automatic"),
    ("upgrade --security --bugfix -y", "dnf upgrade --security"),
    ("upgrade --bugfix -y", None),
    ("upgrade -y --advisory=RHSA-2024:1234", None),
    ("upgrade -y --cve CVE-2024-3094", None),
    ("upgrade openssl", None),
    ("install -y htop", None),
    ("root <root>", None),
    ("", None),
])
def test_dnf_patch_kind(commandline, kind):
    assert dnf.dnf_patch_kind(commandline) == kind


def test_zypper_updates_and_blocked_security_patches():
    pkgs = zypper.parse_zypper_updates(data("zypper_--xmlout_list-updates__sle15.xml")).updates
    assert (pkgs[0].name, pkgs[0].current, pkgs[0].available) == (
        "libopenssl3", "3.0.8-150500.5.27.1", "3.0.8-150500.5.36.1")
    assert len(pkgs) == 4
    sec = zypper.parse_zypper_patches(
        data("zypper_--xmlout_list-patches_--category_security__blocked.xml"),
        security_only=True).updates
    assert [(u.severity, u.repo) for u in sec] == [("important", "blocked"),
                                                   ("critical", "blocked")]
    every = zypper.parse_zypper_patches(
        data("zypper_--xmlout_list-patches_--category_security__blocked.xml")).updates
    assert len(every) == 3 and not every[0].security


def test_zypper_state_counts_patches_and_notes_blocked():
    out = sections(updates=(data("zypper_--xmlout_list-updates__sle15.xml"), 0),
                   patches=(data("zypper_--xmlout_list-patches_--category_security__blocked.xml"),
                            0),
                   reboot=("", 102), history=data("zypp_history__sle15.txt"), tz="+0100")
    state = zypper.state_from_sections(split_sections(out))
    assert state.error is None and len(state.security) == 2
    assert state.reboot_required is True
    assert any("package-manager update" in n for n in state.notes)
    assert state.last_patch_run == PatchRun(datetime(2024, 3, 1, 1, 0, 1, tzinfo=UTC),
                                            "zypper patch --category security")


@pytest.mark.parametrize(("argv", "kind"), [
    ("'zypper' '-n' 'patch'", "zypper patch"),
    ("'zypper' '--non-interactive' 'patch' '-g' 'security,recommended'",
     "zypper patch --category security"),
    ("'zypper' 'up'", "zypper update"),
    ("'/usr/bin/zypper' '--root' '/mnt' 'dup'", "zypper dist-upgrade"),
    ("'zypper' 'patch' '--category' 'recommended'", None),
    ("'zypper' 'patch' '--cve' 'CVE-2024-0727'", None),
    ("'zypper' 'patch' '--updatestack-only'", None),
    ("'zypper' 'up' 'vim'", None),
    ("'zypper' 'in' 'postgresql15-server'", None),
    ("'/usr/bin/ruby.ruby3.3' '/usr/lib/YaST2/bin/y2start' 'sw_single'", None),
])
def test_zypper_patch_kind(argv, kind):
    line = f"2024-03-01 02:00:01|command|root@sles01|{argv}|"
    run = zypper.parse_zypp_history(line)
    assert (run.kind if run else None) == kind


def test_zypper_locked_is_an_error_with_the_message():
    out = sections(updates=(data("zypper_--xmlout_list-patches__system_locked.xml"), 7),
                   patches=(data("zypper_--xmlout_list-patches__system_locked.xml"), 7))
    state = zypper.state_from_sections(split_sections(out))
    assert state.error is not None and "locked by the application" in state.error
    assert "exit 7" in state.error


def test_zypper_garbage_is_an_error():
    state = zypper.state_from_sections(split_sections(sections(updates=("zypper: not found", 127),
                                                               patches=("", 127))))
    assert state.error and "no XML" in state.error


def _win(name: str) -> list[object]:
    return as_list(parse_ps_json(data(name)))


def test_windows_ps51_lone_objects_and_date():
    state = windows.state_from_json(_win("windows_status__ps51_lone_objects.json"))
    assert state.error is None
    [u] = state.updates
    assert (u.name, u.security, u.severity, u.classification) == (
        "KB5034439", True, "Important", "Security Updates")
    assert state.reboot_required and state.reboot_reasons == ["PendingFileRenameOperations"]
    assert state.last_patch_run == PatchRun(datetime(2023, 12, 12, tzinfo=UTC),
                                            "Windows Update KB5033118")


def test_windows_ps7_list_security_classification():
    state = windows.state_from_json(_win("windows_status__ps7_list.json"))
    assert [u.name for u in state.security] == ["KB5044281", "KB5044020"]
    driver = next(u for u in state.updates if u.classification == "Drivers")
    assert driver.name.startswith("Intel Corporation") and driver.advisory == ""
    assert state.reboot_reasons == ["CBS RebootPending", "WindowsUpdate RebootRequired"]
    assert state.extra["wsus_server"] == "http://wsus.client.local:8530"
    # Newer than that: a Defender definition, a .NET update without categories, a failed
    # cumulative update and a driver. The newest hotfix is only shown.
    assert state.last_patch_run == PatchRun(datetime(2024, 9, 11, 3, 12, 44, tzinfo=UTC),
                                            "Windows Update KB5042881")
    assert state.extra["last_hotfix"]["id"] == "KB5043050"


def test_windows_value_count_wrappers_and_bare_kb_numbers():
    state = windows.state_from_json(_win("windows_status__value_count_wrapper.json"))
    assert [(u.name, u.severity) for u in state.updates] == [("KB5034441", "Important"),
                                                             ("KB5034122", "Critical")]
    assert state.last_patch_run == PatchRun(datetime(2023, 12, 12, 19, 40, tzinfo=UTC),
                                            "Windows Update KB5033372")


def test_windows_wsus_unreachable_and_disabled_service_are_errors():
    wsus = windows.state_from_json(_win("windows_status__wsus_unreachable.json"))
    assert wsus.error is not None
    assert "0x8024401C" in wsus.error and "wsus.client.local" in wsus.error
    disabled = windows.state_from_json(_win("windows_status__service_disabled.json"))
    assert disabled.error == "the Windows Update service (wuauserv) is disabled"
    assert windows.state_from_json([]).error


def test_windows_unknown_hresult_keeps_message():
    reason = windows.wu_error_reason("Something odd\nsecond line", "0x80240FFF", None)
    assert reason == "Windows Update search failed: Something odd (0x80240FFF)"


def test_split_sections_tolerates_crlf_and_missing_rc():
    got = split_sections("junk\r\n@@upk:a\r\nx\r\n@@upk-rc 100\r\n@@upk:b\r\ny\r\nz")
    assert (got["a"].text, got["a"].rc, got["b"].text, got["b"].rc) == ("x", 100, "y\nz", None)
    assert parse_offset("garbage") == timezone.utc
    assert parse_offset("-0530").utcoffset(None) == -timedelta(hours=5, minutes=30)


def test_apt_without_the_apt_binary_falls_back_to_apt_get_simulation():
    out = ("@@upk:apt-list\n@@upk:apt-get\n"
           + data("apt-get_-s_upgrade__ubuntu2204_kept_back_esm.txt") + "@@upk-rc 0\n")
    state = apt.state_from_sections(split_sections(out))
    assert state.error is None
    assert len(state.updates) == 9 and len(state.security) == 4
    failed = apt.state_from_sections(split_sections(
        "@@upk:apt-list\n@@upk:apt-get\nE: Could not open lock file\n@@upk-rc 100\n"))
    assert failed.error == ("listing upgradable packages failed (exit 100): "
                            "E: Could not open lock file")


def test_windows_hresult_in_the_message_wins_over_a_wrapper_hresult():
    reason = windows.wu_error_reason(
        'Exception calling "Search" with "1" argument(s): "Exception from HRESULT: '
        '0x80072EE2"', -2146233087, "http://wsus:8530")
    assert reason == ("Windows Update search failed: the update server timed out "
                      "(ERROR_WINHTTP_TIMEOUT) (0x80072EE2) [WSUS http://wsus:8530]")
