"""Patching parsers against the real captures in ../shared/corpus."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from upkeeper.powershell import parse_ps_json
from upkeeper_patching import dnf, windows, zypper

#: file -> (number of updates, a name that must be found, its version)
YUM = {
    "ansible_test_yum__check-update_epoch_ceph.txt": (15, "libcephfs1", "1:11.0.2-0.el7"),
    "ansible_test_yum__check-update_extra_space_columns.txt": (2, "gitlab-ee",
                                                                "12.10.14-ee.0.el7"),
    "ansible_test_yum__check-update_longname_rhn.txt": (2, "xxxxxxxxxxxxxxxxxxxxxxxxxx",
                                                        "1.16-1"),
    "ansible_test_yum__check-update_plugin_load_errors_only.txt": (0, None, None),
    "ansible_test_yum__check-update_rhel7_with_obsoletes_and_security_lines.txt": (
        18, "NetworkManager-openvpn", "1:1.2.6-1.el7"),
    "ansible_test_yum__check-update_wrapped_longname_ru_locale.txt": (
        2, "empty-empty-empty-empty-empty-empty-empty-empty-empty-empty-empty-empty-empty-empty"
           "-empty-empty-empty-empty-empty-empty",
        "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1-0"),
    "ansible_test_yum__check-update_wrapped_repo_column_no_header.txt": (
        7, "screen", "4.1.0-0.23.20120314git3c2946.el7_2"),
}


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


@pytest.mark.parametrize("name", sorted(YUM))
def test_yum_check_update_corpus(corpus, name):
    count, pkg, version = YUM[name]
    upd = dnf.parse_check_update(_read(corpus / "linux_updates" / name))
    assert len(upd) == count
    if pkg:
        found = next(u for u in upd if u.name == pkg)
        assert found.available == version
        assert found.repo and not found.repo.startswith((" ", "@"))
    for u in upd:
        assert u.arch in ("x86_64", "noarch")


def test_yum_obsoletes_in_corpus_name_what_they_replace(corpus):
    text = _read(corpus / "linux_updates" /
                 "ansible_test_yum__check-update_rhel7_with_obsoletes_and_security_lines.txt")
    obs = {u.name: u.replaces for u in dnf.parse_check_update(text) if u.kind == "obsoletes"}
    assert obs["python-bugzilla"] == "python-bugzilla-develdashboardfixes"
    assert obs["python2-pip"] == "python-pip"
    assert len(obs) == 6


def test_yum_wrapped_repo_column(corpus):
    text = _read(corpus / "linux_updates" /
                 "ansible_test_yum__check-update_wrapped_repo_column_no_header.txt")
    repos = {u.name: u.repo for u in dnf.parse_check_update(text)}
    assert repos["ipxe-roms-qemu"] == "rhelosp-9.0-director-puddle"
    assert repos["screen"] == "rhelosp-rhel-7.2-z"


def test_salt_zypper_updates_xml(corpus):
    res = zypper.parse_zypper_updates(_read(corpus / "linux_updates" / "salt__zypper-updates.xml"))
    assert [(u.name, u.available, u.current) for u in res.updates] == [
        ("SUSEConnect", "0.2.33-7.1", ""), ("bind-libs", "9.9.6P1-35.1", ""),
        ("bind-utils", "9.9.6P1-35.1", "")]
    assert res.updates[0].title == "Utility to register a system with the SUSE Customer Center"
    assert res.updates[0].repo == "SLE12-SP1-x86_64-Update"


def test_salt_zypper_search_output_has_no_patch_updates(corpus):
    # `zypper search -t patch` uses <solvable>, not <update>: nothing to mistake for pending.
    res = zypper.parse_zypper_patches(
        _read(corpus / "linux_updates" / "salt__zypper-patches_search-t-patch.xml"))
    assert res.updates == [] and res.messages == []


def test_update_searcher_baseline_json(corpus):
    rows = parse_ps_json(_read(corpus / "windows_updates" /
                               "update_session_searcher__baseline_installed_updates_server2016"
                               ".json"))
    upd = windows.parse_windows_updates(rows)
    assert [(u.name, u.severity, u.security, u.classification) for u in upd] == [
        ("KB4521858", "Critical", True, "Security Updates"),
        ("KB4519998", "Critical", True, "Security Updates")]
    assert upd[1].title.startswith("2019-10 Cumulative Update for Windows Server 2016")


def test_get_hotfix_ps51_single_object(corpus):
    value = parse_ps_json(_read(corpus / "windows_updates" /
                                "get-hotfix__Invoke-Command_Get-HotFix_ConvertTo-Json_ps51_wmi"
                                ".json"))
    newest = windows.newest_hotfix(value)
    assert newest is not None
    assert newest[0] == "KB4512578"
    assert newest[1] == datetime.fromtimestamp(1567807200, timezone.utc)
