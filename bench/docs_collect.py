"""How long ``docs.collect`` takes per Linux host over SSH (issue 17 target: under 2 s).

Starts the private test sshd on 127.0.0.1 (upkeeper_ssh.testserver), connects once, then
times N collections with the default params (every listening TCP port probed for TLS
from the host) and prints the median, minimum and maximum, plus the same over the local
transport for comparison. Run: ``python bench/docs_collect.py [-n 10]``.
"""

from __future__ import annotations

import argparse
import os
import pwd
import statistics
import sys
import tempfile
import time
from pathlib import Path

from upkeeper import Host
from upkeeper.testing import make_host, run_check
from upkeeper.transport.local import LocalTransport
from upkeeper_docs.collect import DocsCollect
from upkeeper_ssh import SSHTransport
from upkeeper_ssh.testserver import SSHServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="upk-bench-docs-") as tmp:
        os.environ["HOME"] = tmp
        srv = SSHServer(Path(tmp) / "sshd")
        user = pwd.getpwuid(os.geteuid()).pw_name
        srv.authorize(user)
        srv.start()
        try:
            known = Path(tmp) / "known_hosts"
            known.write_text(srv.known_hosts_lines())
            host = Host("bench", vars={
                "ansible_host": "127.0.0.1", "ansible_port": srv.port, "ansible_user": user,
                "ansible_ssh_private_key_file": str(srv.client_key),
                "ssh_known_hosts_file": str(known)})
            ssh = SSHTransport(host)
            ssh.run("true")
            local_host = make_host("localhost")
            rows = {"ssh": (host, ssh), "local": (local_host, LocalTransport(local_host))}
            for name, (h, transport) in rows.items():
                took, probed, status = [], 0, ""
                for _ in range(args.n):
                    started = time.monotonic()
                    [res] = run_check(DocsCollect, {}, host=h, transport=transport)
                    took.append(time.monotonic() - started)
                    status = res.summary
                    probed = len(res.details["facts"]["sections"]["ports"]["items"])
                print(f"{name:5} n={args.n} median {statistics.median(took):.2f}s "
                      f"min {min(took):.2f}s max {max(took):.2f}s "
                      f"({probed} listening sockets; {status})")
            ssh.close()
        finally:
            srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
