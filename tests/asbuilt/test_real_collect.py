"""With the real collector on this machine: two collections in a row document no change
(real volatile noise: uptime, free memory, load, used space), keep one snapshot row, and
build documents that follow the published schema.

The machine is shared: other test suites open and close loopback servers on ephemeral
ports between the two collections. Those are real changes and are the only ones allowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from upkeeper.asbuilt.document import schema_text
from upkeeper.store.history import History

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_real_collections_show_no_change(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    (tmp_path / "inv.yml").write_text(textwrap.dedent("""\
        all:
          hosts:
            localhost: {ansible_connection: local, client: "Acme <Corp>"}
        """))
    env = {**os.environ, "UPKEEPER_STATE_DIR": str(tmp_path / "state")}

    def cli(*args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "upkeeper", *args], env=env,
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # WARN: n/a parts

    playbook = str(ROOT / "playbooks" / "as-built.yml")
    cli("run", "-i", "inv.yml", playbook)
    history = History(tmp_path / "state" / "history.sqlite3")
    first = history.query("SELECT collected_at FROM asbuilt_snapshots")[0][0]
    history.close()
    cli("run", "-i", "inv.yml", playbook)
    since = datetime.fromtimestamp(first + 0.001, tz=timezone.utc).isoformat()
    cli("docs", "build", "-o", "out", "--since", since)
    index = json.loads((tmp_path / "out" / "Acme_Corp" / "docs.json").read_text())
    others = [c for c in index["changes"] if not _test_server(c)]
    assert others == [], others
    history = History(tmp_path / "state" / "history.sqlite3")
    rows = len(history.query("SELECT id FROM asbuilt_snapshots"))
    assert rows == (2 if index["changes"] else 1)
    history.close()
    schema = json.loads(schema_text())
    jsonschema.validate(index, schema)
    host = json.loads((tmp_path / "out" / "Acme_Corp" / index["hosts"][0]["facts"])
                      .read_text())
    jsonschema.validate(host, {"$defs": schema["$defs"], "$ref": "#/$defs/host_file"})
    assert {"os", "software", "ports", "interfaces"} <= set(host["sections"])


def _test_server(change: dict[str, Any]) -> bool:
    """A loopback listener on an ephemeral port: another suite's test server."""
    port = change["before"] or change["after"] or {}
    return change["category"] == "ports" and port.get("address") in (
        "127.0.0.1", "::1", "[::1]") and int(port.get("port", 0)) >= 32768
