"""Runs inside ``unshare -m`` (a private mount namespace): /etc/hosts bound over with one
that names another machine ``localhost``, then asks whether ``--bind localhost:PORT``
without users may serve. Prints ``refused`` or ``allowed``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from upkeeper.store.history import History
from upkeeper.web.server import Bind, WebSetupError, check_setup


def main() -> None:
    work = Path(sys.argv[1])
    hosts = work / "hosts"
    hosts.write_text("192.0.2.10 localhost\n")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)
    try:
        check_setup(Bind("localhost", 8470), History(work / "h.sqlite3"), None, None)
    except WebSetupError:
        print("refused")
        return
    print("allowed")


if __name__ == "__main__":
    main()
