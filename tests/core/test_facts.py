"""Facts parsing from captured outputs, and lazy gathering."""

from __future__ import annotations

from upkeeper.engine.facts import LazyFacts
from upkeeper.transport.facts import parse_os_release, parse_posix_facts

DEBIAN = """@@uname
Linux
6.1.0-18-amd64
x86_64
@@hostname
web01
@@os-release
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian
@@pkg
apt-get
@@uid
1000
@@end
"""

ROCKY = """@@uname
Linux
4.18.0-513.el8.x86_64
x86_64
@@hostname
db01.example.com
@@os-release
NAME="Rocky Linux"
VERSION_ID="8.9"
ID="rocky"
ID_LIKE="rhel centos fedora"
PRETTY_NAME='Rocky Linux 8.9 (Green Obsidian)'
@@pkg
dnf
yum
@@uid
0
@@end
"""


def test_debian():
    f = parse_posix_facts(DEBIAN)
    assert f == {"os_family": "linux", "kernel": "6.1.0-18-amd64", "arch": "x86_64",
                 "hostname": "web01", "distro": "debian", "distro_version": "12",
                 "distro_like": "", "distro_name": "Debian GNU/Linux 12 (bookworm)",
                 "pkg_mgr": "apt", "is_root": False}


def test_rocky_prefers_dnf_and_reads_single_quotes():
    f = parse_posix_facts(ROCKY)
    assert f["pkg_mgr"] == "dnf" and f["distro"] == "rocky" and f["is_root"]
    assert f["distro_name"] == "Rocky Linux 8.9 (Green Obsidian)"


def test_missing_sections_do_not_crash():
    f = parse_posix_facts("garbage\n@@uname\nFreeBSD\n")
    assert f["os_family"] == "freebsd" and f["pkg_mgr"] is None and f["distro"] == ""


def test_os_release_tolerates_odd_lines():
    assert parse_os_release('# c\nID=alpine\nBROKEN="unterminated\n\nX') == {
        "ID": "alpine", "BROKEN": "unterminated"}


def test_lazy_facts_load_once():
    calls = []
    facts = LazyFacts(lambda: calls.append(1) or {"distro": "debian"})
    assert not facts.loaded and facts.peek("distro") is None
    assert facts["distro"] == "debian" and facts.get("distro") == "debian"
    assert dict(facts) == {"distro": "debian"} and calls == [1]
