"""Runs inside ``unshare -m`` (a private mount namespace: nothing here touches the
machine): a small tmpfs filled with old and new files, a symlink to /etc (a decoy bound
over /etc in this namespace only) and a hard link; the disk.usage check with a
disk.cleanup fix, in check mode and then for real. Prints one JSON document."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.remediation.conftest import Clock, Cycle, local
from upkeeper.store.history import History

OLD = 30 * 86400


def tree_hash(*roots: Path) -> str:
    h = hashlib.sha256()
    for root in roots:
        for dirpath, dirs, files in os.walk(root, followlinks=False):
            dirs.sort()
            for name in sorted(files + [d for d in dirs if Path(dirpath, d).is_symlink()]):
                p = Path(dirpath, name)
                st = p.lstat()
                h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def used(mount: Path) -> int:
    st = os.statvfs(mount)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def old(path: Path) -> None:
    t = path.lstat().st_mtime - OLD
    os.utime(path, (t, t), follow_symlinks=False)


JOURNALCTL = r"""#!/bin/sh
# Stand-in journalctl: journal files are the *.journal files of /var/log/journal.
J=/var/log/journal
case "$1" in
  --disk-usage)
    echo "Archived and active journals take up $(du -sk "$J" | cut -f1)K in the file system." ;;
  --vacuum-size=*)
    max=${1#--vacuum-size=}
    for f in $(ls -tr "$J"/*.journal); do
      [ "$(cat "$J"/*.journal | wc -c)" -le "$max" ] && break
      rm -f -- "$f"
    done ;;
  *) exit 1 ;;
esac
"""
APT_GET = """#!/bin/sh
# Stand-in apt-get: only `clean`.
[ "$1" = clean ] || exit 1
rm -f /var/cache/apt/archives/*.deb
"""


def caches(work: Path) -> None:
    """Journal vacuum and apt-get clean, stand-ins on PATH, tmpfs over /var/log and
    /var/cache in this namespace."""
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    bin_dir = work / "bin"
    bin_dir.mkdir()
    for name, text in (("journalctl", JOURNALCTL), ("apt-get", APT_GET)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    os.environ["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    for where in ("/var/log", "/var/cache"):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", where], check=True)
    journal = Path("/var/log/journal")
    archives = Path("/var/cache/apt/archives")
    journal.mkdir()
    archives.mkdir(parents=True)
    for n in range(5):
        (journal / f"system@{n}.journal").write_bytes(os.urandom(1 << 20))
        t = 1_700_000_000 + n
        os.utime(journal / f"system@{n}.journal", (t, t))
    for n in range(5):
        (archives / f"pkg{n}.deb").write_bytes(os.urandom(1 << 20))
    pb = work / "pb.yml"
    pb.write_text("""
name: disk
hosts: all
checks:
  - check: disk.usage
    params:
      exclude_pseudo: false
      include_mounts: [/var/log, /var/cache]
      forecast: false
      mounts: {/var/log: {warn_pct: 50, crit_pct: 60}, /var/cache: {warn_pct: 50, crit_pct: 60}}
    fix:
      fix: disk.cleanup
      tier: auto
      params: {journal_max: 1MiB, package_caches: [apt]}
""")
    cycle = Cycle(pb, History(work / "h.sqlite3"), Clock(), [local()])
    out: dict[str, object] = {}
    before = tree_hash(journal, archives)
    checked = cycle.run(check_mode=True)
    out["check_mode"] = checked.meta.get("remediation")
    out["check_mode_unchanged"] = tree_hash(journal, archives) == before
    used_before = used(Path("/var/log")) + used(Path("/var/cache"))
    run = cycle.run()
    out["outcomes"] = run.meta.get("remediation")
    out["freed"] = used_before - used(Path("/var/log")) - used(Path("/var/cache"))
    out["journal"] = sorted(p.name for p in journal.iterdir())
    out["archives"] = sorted(p.name for p in archives.iterdir())
    print(json.dumps(out, default=str))


def main() -> None:
    work = Path(sys.argv[1])
    if sys.argv[2:] == ["caches"]:
        caches(work)
        return
    decoy = work / "decoy-etc"
    decoy.mkdir()
    for name in ("passwd", "group", "hosts"):
        shutil.copy2(Path("/etc") / name, decoy / name)
        old(decoy / name)
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "--bind", str(decoy), "/etc"], check=True)
    mnt = work / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    app = mnt / "app"
    (app / "sub").mkdir(parents=True)
    for name, size, is_old in (("old1.log", 2 << 20, True), ("sub/old2.log", 2 << 20, True),
                               ("new.log", 1 << 20, False)):
        (app / name).write_bytes(os.urandom(size))
        if is_old:
            old(app / name)
    (app / "linked.log").write_bytes(os.urandom(512 << 10))
    os.link(app / "linked.log", mnt / "elsewhere.bin")
    old(app / "linked.log")
    (app / "etc-link").symlink_to("/etc")
    old(app / "etc-link")
    (app / "passwd.log").symlink_to("/etc/passwd")
    old(app / "passwd.log")
    pb = work / "pb.yml"
    pb.write_text(f"""
name: disk
hosts: all
checks:
  - check: disk.usage
    params:
      exclude_pseudo: false
      include_mounts: ["{mnt}"]
      forecast: false
      mounts: {{"{mnt}": {{warn_pct: 50, crit_pct: 60}}}}
    fix:
      fix: disk.cleanup
      tier: auto
      params: {{paths: ["{app}/*", "{app}/*/*", "{app}/*.log", "{app}/etc-link/*"], older_than: 7d}}
""")
    cycle = Cycle(pb, History(work / "h.sqlite3"), Clock(), [local()])
    out: dict[str, object] = {}
    before = tree_hash(mnt, Path("/etc"))
    checked = cycle.run(check_mode=True)
    out["check_mode"] = checked.meta.get("remediation")
    out["results"] = [(r.status.value, r.summary) for r in checked.results]
    out["check_mode_unchanged"] = tree_hash(mnt, Path("/etc")) == before
    used_before = used(mnt)
    run = cycle.run()
    out["outcomes"] = run.meta.get("remediation")
    out["freed"] = used_before - used(mnt)
    out["left"] = sorted(str(p.relative_to(mnt)) for p in mnt.rglob("*"))
    out["etc"] = sorted(p.name for p in Path("/etc").iterdir())
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
