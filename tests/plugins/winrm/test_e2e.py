"""End to end: ``upkeeper run`` against Windows inventory hosts served by the test endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from upkeeper_winrm.testserver import Reply, WSManServer

from .conftest import FakeWindows

PLAYBOOK = """\
name: Windows health
hosts: windows
checks:
  - name: winrm service
    check: system.command
    params:
      command: |
        $s = Get-Service -Name WinRM
        "OK - WinRM is $($s.Status)|services_running=1"
  - name: backup folder
    check: system.command
    params:
      command: Get-Item 'C:\\Backups\\nightly'
  - name: build supported
    check: system.command
    when: facts.os_build | int >= 17763
    params:
      command: "Write-Output 'OK - build {{ facts.os_build }} on {{ facts.hostname }}'"
  - name: slow inventory
    check: system.command
    params:
      command: Start-Sleep -Seconds 600
      timeout: 1
"""

INVENTORY = """\
windows:
  hosts:
    srv-file01:
      ansible_host: 127.0.0.1
      ansible_port: {port}
      ansible_password: {password}
    srv-locked:
      ansible_host: 127.0.0.1
      ansible_port: {port}
      ansible_password: Wrong-Pass-5150
  vars:
    ansible_connection: winrm
    ansible_user: {user}
    ansible_winrm_transport: basic
    ansible_winrm_scheme: http
"""

CLIXML = (
    '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/'
    "04\"><S S=\"Error\">Get-Item : Cannot find path 'C:\\Backups\\nightly' because it does not "
    "exist._x000D__x000A_</S></Objs>"
)


@pytest.mark.slow
def test_upkeeper_run_against_windows_hosts(endpoint: WSManServer, windows: FakeWindows,
                                            tmp_path: Path) -> None:
    windows.add("Get-Service -Name WinRM", "OK - WinRM is Running|services_running=1\r\n")
    windows.add("Get-Item", Reply(stderr=CLIXML, exit_code=1))
    windows.add("Start-Sleep", Reply(delay=600))
    windows.add("re:Write-Output 'OK - build", lambda ex: ex.script.split("'")[1])
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    (tmp_path / "inv.yml").write_text(INVENTORY.format(
        port=endpoint.port, password=endpoint.password, user=endpoint.username))
    proc = subprocess.run(
        [sys.executable, "-m", "upkeeper", "run", str(tmp_path / "pb.yml"),
         "-i", str(tmp_path / "inv.yml"), "--format", "json", "--forks", "2"],
        capture_output=True, text=True, timeout=120)
    assert proc.stdout, proc.stderr
    run = json.loads(proc.stdout)
    by = {(r["host"], r["name"]): r for r in run["results"]}

    ok = by[("srv-file01", "winrm service")]
    assert ok["status"] == "OK" and ok["summary"] == "OK - WinRM is Running"
    assert ok["metrics"] == {"services_running": 1.0}
    missing = by[("srv-file01", "backup folder")]
    assert missing["status"] == "WARN"
    assert missing["summary"].startswith("Get-Item : Cannot find path 'C:\\Backups\\nightly'")
    build = by[("srv-file01", "build supported")]
    assert build["status"] == "OK" and build["summary"] == "OK - build 20348 on SRV-FILE01"
    slow = by[("srv-file01", "slow inventory")]
    assert slow["status"] == "UNKNOWN" and "timed out" in slow["summary"]

    locked = [r for r in run["results"] if r["host"] == "srv-locked"]
    assert locked and all(r["status"] == "UNKNOWN" for r in locked)
    assert any("401" in r["summary"] and "basic" in r["summary"] for r in locked)
    assert "Wrong-Pass-5150" not in proc.stdout + proc.stderr
    assert endpoint.password not in proc.stdout + proc.stderr

    assert run["status"] == "UNKNOWN" and proc.returncode == 3
    # One shell for the reachable host for the whole run, deleted at the end.
    assert (endpoint.shells_created, endpoint.open_shells) == (1, 0)
    facts_queries = [e for e in endpoint.executions if "Win32_OperatingSystem" in e.script]
    assert len(facts_queries) == 1
