"""df, /proc/mounts and Windows volume parsers on captured and hand-written outputs."""

from __future__ import annotations

import json

import pytest

from upkeeper_disk.parsers import (
    DfParseError,
    ceil_pct,
    merge_usage,
    parse_df,
    parse_df_inodes,
    parse_proc_mounts,
    parse_windows_volumes,
    unescape_mount,
)

from .helpers import CORPUS, data

ODD_MOUNTS = {"/", "/tmp/dk/ext4", "/tmp/dk/full", "/tmp/dk/lvmlike", "/tmp/dk/Client Data",
              "/tmp/dk/mnt with space", "/tmp/dk/ro", "/tmp/dk/ro-ext4"}
LONG = "/dev/mapper/vg_datastore01-lv_very_long_logical_volume_name_backup"


def by_mount(text: str) -> dict[str, object]:
    return {fs.mount: fs for fs in parse_df(text)}


@pytest.mark.parametrize("name", [
    "gnu_df_PkT.txt", "gnu_df_Pk.txt", "busybox_df_P.txt", "busybox_df_PTk.txt",
    "busybox_df_k_wrapped.txt", "busybox_df_T_wrapped.txt",
])
def test_every_captured_df_flavour_finds_all_mounts(name: str) -> None:
    fss = {fs.mount: fs for fs in parse_df(data(name))}
    assert set(fss) >= ODD_MOUNTS
    assert fss["/tmp/dk/lvmlike"].device == LONG
    assert fss["/tmp/dk/lvmlike"].size_bytes == 8192 * 1024
    full = fss["/tmp/dk/ext4"]
    assert (full.size_bytes, full.used_bytes, full.avail_bytes) == (
        56037 * 1024, 54287 * 1024, 0)
    assert full.used_pct == 100
    # GNU rounds 14/(14+23537) up to 1%; busybox prints 0% but we compute like GNU.
    assert fss["/tmp/dk/Client Data"].used_pct == 1


def test_types_come_from_T_column_even_when_wrapped() -> None:
    fss = {fs.mount: fs for fs in parse_df(data("busybox_df_T_wrapped.txt"))}
    assert fss["/tmp/dk/lvmlike"].fstype == "tmpfs"
    assert fss["/"].fstype == "ext4"
    assert {fs.fstype for fs in parse_df(data("gnu_df_Pk.txt"))} == {None}


def test_percent_matches_gnu_capacity_column_for_every_row() -> None:
    for line in data("gnu_df_PkT.txt").splitlines()[1:]:
        words = line.split()
        used, avail, printed = int(words[3]), int(words[4]), int(words[5].rstrip("%"))
        assert ceil_pct(used, used + avail) == printed, line


@pytest.mark.parametrize("name", ["gnu_df_Pi.txt", "busybox_df_Pi.txt", "busybox_df_i_wrapped.txt"])
def test_inode_tables(name: str) -> None:
    inodes = parse_df_inodes(data(name))
    assert set(inodes) >= ODD_MOUNTS
    assert (inodes["/tmp/dk/full"].total, inodes["/tmp/dk/full"].used,
            inodes["/tmp/dk/full"].free) == (64, 64, 0)
    assert inodes["/tmp/dk/lvmlike"].device == LONG


def test_block_parser_ignores_inode_tables_and_vice_versa() -> None:
    with pytest.raises(DfParseError):
        parse_df(data("gnu_df_Pi.txt"))
    with pytest.raises(DfParseError):
        parse_df_inodes(data("gnu_df_PkT.txt"))
    with pytest.raises(DfParseError):
        parse_df("df: unrecognized option '--foo'\n")


def test_rhel6_wrapped_lvm_names_and_space_in_mount() -> None:
    fss = by_mount(data("rhel6_df_kT_wrapped.txt"))
    assert set(fss) == {"/", "/dev/shm", "/boot", "/var", "/home", "/srv/backup",
                        "/media/CentOS_6.10_Final", "/mnt/nas share"}
    var = fss["/var"]
    assert var.device == "/dev/mapper/vg_srv01-lv_var" and var.fstype == "ext4"
    assert var.used_pct == 93
    assert fss["/mnt/nas share"].device == "//nas01/share"
    assert fss["/mnt/nas share"].fstype == "cifs"
    assert fss["/home"].used_pct == 100
    inodes = parse_df_inodes(data("rhel6_df_Pi.txt"))
    assert inodes["/var"].used == 1281377
    assert inodes["/mnt/nas share"].total == 0


def test_escaped_mount_points_are_decoded() -> None:
    fss = by_mount(data("alpine_busybox_df_PT_escaped.txt"))
    assert "/mnt/Client Data" in fss and "/mnt/usb stick" in fss
    assert fss["/mnt/Client Data"].used_pct == 100
    assert "/mnt/Client Data" in parse_df_inodes(data("alpine_busybox_df_Pi_escaped.txt"))
    assert unescape_mount(r"/a\040b\011c\134d") == "/a b\tc\\d"


def test_dash_rows_are_dropped_and_errors_tolerated() -> None:
    fss = by_mount(data("gnu_df_PkT_stale_nfs.txt"))
    assert "/mnt/archive" not in fss
    assert fss["/mnt/backup"].fstype == "nfs4"
    assert fss["/mnt/backup"].used_pct == 90


def test_overfull_negative_available_counts_as_full() -> None:
    text = ("Filesystem     Type 1024-blocks    Used Available Capacity Mounted on\n"
            "/dev/sda1      ext4    10255636 9960000   -228984     103% /data\n")
    [fs] = parse_df(text)
    assert (fs.avail_bytes, fs.used_pct) == (0, 100)


def test_proc_mounts_and_merge() -> None:
    mounts = parse_proc_mounts(data("proc_mounts.txt"))
    assert mounts["/tmp/dk/mnt with space"].fstype == "tmpfs"
    assert mounts["/tmp/dk/ro-ext4"].readonly and not mounts["/"].readonly
    merged = {fs.mount: fs for fs in merge_usage(parse_df(data("busybox_df_P.txt")),
                                                 parse_df_inodes(data("busybox_df_Pi.txt")),
                                                 mounts)}
    assert merged["/tmp/dk/ro-ext4"].readonly
    assert merged["/tmp/dk/Client Data"].fstype == "ext4"
    assert merged["/tmp/dk/full"].inodes_used_pct == 100


def test_windows_logical_disks_single_object_and_list() -> None:
    single = parse_windows_volumes(json.loads(data("windows_logicaldisk_ps51_single.json")))
    assert [(v.mount, v.fstype, v.avail_bytes) for v in single] == [("C:", "NTFS", 5368709120)]
    assert single[0].used_pct == 96
    listed = parse_windows_volumes(json.loads(data("windows_logicaldisk_list.json")))
    assert [v.mount for v in listed] == ["C:", "D:", "E:"]
    assert listed[2].device == "SQL Logs"


def test_windows_get_volume_numeric_letter_and_no_letter_skipped() -> None:
    vols = parse_windows_volumes(json.loads(data("windows_get_volume_ps51.json")))
    assert [v.mount for v in vols] == ["C:"]
    assert vols[0].size_bytes == 536198770688


needs_corpus = pytest.mark.corpus


@needs_corpus
@pytest.mark.parametrize("name", ["DF_AL", "DF_ALP", "DF_ALP_DOC", "DF_AL_DOC", "DF_AL_BS_2MB"])
def test_corpus_block_tables(name: str) -> None:
    fss = by_mount((CORPUS / "disk_usage" / f"insights-core_test_df__{name}.txt").read_text())
    root = fss["/"]
    assert root.size_bytes > 0 and 0 < root.used_pct < 100
    if "DOC" in name:
        assert "/V M T o o l s" in fss and "/proc/sys/fs/binfmt_misc" not in fss
    if name == "DF_AL_BS_2MB":
        assert root.size_bytes == 62031 * 2_000_000 and root.used_pct == 84


@needs_corpus
def test_corpus_inode_table_with_wrapped_device_and_blank_lines() -> None:
    inodes = parse_df_inodes((CORPUS / "disk_usage" / "insights-core_test_df__DF_LI.txt")
                             .read_text())
    assert inodes["/"].device == "/dev/mapper/vg_lxcrhel6sat56-lv_root"
    assert inodes["/"].used == 124955
    assert {"/V M T o o l s", "/VM Tools"} <= set(inodes)


@needs_corpus
def test_corpus_windows_logical_disk() -> None:
    text = (CORPUS / "disk_usage" / "windows__Win32_LogicalDisk_Select_ConvertTo-Json_ps51.json"
            ).read_text()
    vols = parse_windows_volumes(json.loads(text))
    assert [(v.mount, v.size_bytes, v.avail_bytes) for v in vols] == [
        ("C:", 999271952384, 386084032512)]
