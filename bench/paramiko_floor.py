"""The floor: a plain paramiko thread pool running the fleet's three commands per host.

Usage: python paramiko_floor.py HOSTS.json FORKS. Prints the number of commands that
exited 0. It does what any careful client must (TCP_NODELAY, key loaded once, host key
compared with the expected one) and nothing else.
"""

from __future__ import annotations

import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

import paramiko

COMMANDS = ("cat /proc/uptime", "df -P", "cat /etc/os-release")


def one_host(spec: dict[str, object], pkey: paramiko.PKey, host_key: str) -> int:
    sock = socket.create_connection((str(spec["host"]), int(str(spec["port"]))), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = paramiko.Transport(sock)
    try:
        t.start_client(timeout=10)
        if t.get_remote_server_key().get_base64() != host_key:
            raise SystemExit("host key mismatch")
        t.auth_publickey(str(spec["user"]), pkey)
        ok = 0
        for command in COMMANDS:
            chan = t.open_session()
            chan.exec_command(command)
            out = chan.makefile("rb")
            err = chan.makefile_stderr("rb")
            out.read()
            err.read()
            ok += chan.recv_exit_status() == 0
            chan.close()
        return ok
    finally:
        t.close()


def main() -> None:
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    forks = int(sys.argv[2])
    pkey = paramiko.PKey.from_path(spec["key"])
    with ThreadPoolExecutor(forks) as pool:
        done = list(pool.map(lambda h: one_host(h, pkey, spec["host_key"]), spec["hosts"]))
    print(sum(done))


if __name__ == "__main__":
    main()
