"""paramiko without invoke: the SSH plugin lets paramiko's ``import invoke`` load on first
use (invoke is only for ``Match exec`` in OpenSSH config files, which upkeeper never
reads), and code that does use it still works."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import json, sys
import upkeeper_ssh.transport  # imports paramiko
loaded = sorted(m for m in sys.modules if m == "invoke" or m.startswith("invoke."))
import paramiko
config = paramiko.SSHConfig.from_text('Match exec "exit 0"\\n    User matched\\n')
print(json.dumps([loaded, config.lookup("somehost").get("user"),
                  sorted(m for m in sys.modules if m.startswith("invoke."))[:1]]))
"""


def test_paramiko_is_imported_without_running_invoke_and_invoke_still_works() -> None:
    res = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         timeout=120, check=True)
    loaded, user, later = json.loads(res.stdout)
    assert loaded == ["invoke"]  # a module object, not executed: none of its submodules
    assert user == "matched"  # Match exec ran through invoke, loaded on first use
    assert later  # ... which imported invoke for real
