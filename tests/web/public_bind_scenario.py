"""Runs inside ``unshare -n`` (a network namespace of its own, only ``lo`` up: nothing
is reachable from outside): ``upkeeper web --bind 0.0.0.0:PORT`` as a real process with
one user, then that user removed with ``upkeeper web user remove`` while it serves, then
requests naming a loopback Host as any client on the network could. Prints one JSON
document."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

UPKEEPER = [sys.executable, "-m", "upkeeper"]


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET naming the loopback Host, redirects not followed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        res = conn.getresponse()
        return res.status, res.read().decode("utf-8", "replace")
    finally:
        conn.close()


def main() -> None:
    state = Path(sys.argv[1])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run([*UPKEEPER, "--state-dir", str(state), "web", "user", "add", "alice",
                    "--role", "operator", "--password-stdin"], input="alice-pw-1\n",
                   text=True, check=True, env=env, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([*UPKEEPER, "--state-dir", str(state), "web", "--bind",
                               f"0.0.0.0:{port}"], env=env, stderr=subprocess.PIPE,
                              text=True)
    out: dict[str, object] = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                first, _ = get(port, "/")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("dashboard did not start: "
                                     f"{server.stderr.read()}") from None
                time.sleep(0.1)
        out["with_user"] = first
        subprocess.run([*UPKEEPER, "--state-dir", str(state), "web", "user", "remove",
                        "alice"], check=True, env=env, capture_output=True)
        out["after_remove"], page = get(port, "/")
        out["fleet_shown"] = "Fleet" in page
        out["actions"], _ = get(port, "/actions")
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
