"""The winrm transport driving the real pywinrm client over HTTP against the test endpoint."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import pytest

from tests.waiting import wait_for
from upkeeper import TransportError
from upkeeper.powershell import ps_quote
from upkeeper_winrm import WinRMTransport
from upkeeper_winrm.scripts import CMD_LINE_LIMIT
from upkeeper_winrm.testserver import Execution, Fault, Reply, WSManServer

from .conftest import FakeWindows

MakeTransport = Callable[..., WinRMTransport]

CLIXML_ERROR = (
    '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    '</TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first use.</AV>'
    '<AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj>'
    "<S S=\"Error\">Get-Item : Cannot find path 'C:\\nope' because it does not exist._x000D__x000A_"
    '</S><S S="Error">    + FullyQualifiedErrorId : PathNotFound_x000D__x000A_</S></Objs>'
)


def test_short_script_runs_inline_in_one_reused_shell(endpoint: WSManServer,
                                                      windows: FakeWindows,
                                                      make_transport: MakeTransport) -> None:
    windows.add("Get-Service", "Running\r\n")
    t = make_transport()
    script = "(Get-Service -Name 'WinRM').Status"
    res = t.run_powershell(script, timeout=10)
    assert (res.exit_code, res.stdout, res.timed_out) == (0, "Running\r\n", False)
    assert res.command == script
    ex = endpoint.executions[-1]
    assert ex.command.startswith("powershell.exe -NoProfile -NonInteractive")
    assert " -EncodedCommand " in ex.command and ex.stdin == b""
    assert ex.console_mode_stdin
    # The script travels as a single-quoted literal inside the wrapper, untouched.
    assert ex.encoded_script is not None and ps_quote(script) in ex.encoded_script
    assert "$ErrorActionPreference = 'Stop'" in ex.encoded_script
    t.run_powershell(script)
    t.run("hostname")
    assert endpoint.shells_created == 1
    shell = next(iter(endpoint.shells.values()))
    assert (shell.codepage, shell.noprofile) == ("65001", "TRUE")
    # Every command is signalled (freed on the host) once it is done.
    assert endpoint.signals == [e.command_id for e in endpoint.executions]
    t.close()
    assert endpoint.open_shells == 0 and endpoint.shells_deleted == 1
    t.close()
    assert endpoint.actions.count("Delete") == 1


def test_long_script_goes_over_stdin(endpoint: WSManServer, windows: FakeWindows,
                                     make_transport: MakeTransport) -> None:
    windows.add("checkpoint-9999", "done\r\n")
    body = "".join(f"Write-Output 'checkpoint-{i}' | Out-Null\n" for i in range(10_000))
    script = "# über-long script\n" + body
    assert len(script) > 40 * CMD_LINE_LIMIT
    res = make_transport().run_powershell(script, timeout=20)
    assert (res.exit_code, res.stdout) == (0, "done\r\n")
    ex = endpoint.executions[-1]
    assert len(ex.command) < CMD_LINE_LIMIT
    assert not ex.console_mode_stdin and ex.stdin_closed
    assert ex.stdin_text == script
    assert endpoint.actions.count("Send") > 1
    # Only the fixed bootstrap is on the command line, none of the script.
    assert ex.encoded_script is not None and "checkpoint" not in ex.encoded_script


def test_script_just_over_the_inline_limit_switches_to_stdin(
        endpoint: WSManServer, windows: FakeWindows, make_transport: MakeTransport) -> None:
    windows.add("marker", "ok")
    t = make_transport()
    sizes = []
    for n in (2000, 2600, 3200, 9000):
        script = "# marker\n" + "x" * n
        assert t.run_powershell(script).stdout == "ok"
        ex = endpoint.executions[-1]
        sizes.append((n, bool(ex.stdin)))
        assert len(ex.command) <= CMD_LINE_LIMIT
    assert sizes[0] == (2000, False) and sizes[-1] == (9000, True)


@pytest.mark.parametrize("length", [100, 20_000])
def test_non_ascii_script_and_output_survive(endpoint: WSManServer, windows: FakeWindows,
                                             make_transport: MakeTransport, length: int) -> None:
    windows.add("Größe", lambda ex: Reply(stdout="Größe: 5 € ✓ 東京 😀\r\n".encode()))
    script = "Write-Output 'Größe'  # naïve ☃\n" + "#" * length
    res = make_transport().run_powershell(script)
    assert res.stdout == "Größe: 5 € ✓ 東京 😀\r\n"
    ex = endpoint.executions[-1]
    assert "naïve ☃" in ex.text


def test_clixml_stderr_becomes_readable_text(windows: FakeWindows,
                                             make_transport: MakeTransport) -> None:
    windows.add("Get-Item", Reply(stderr=CLIXML_ERROR, exit_code=1))
    res = make_transport().run_powershell("Get-Item C:\\nope")
    assert res.exit_code == 1 and not res.ok
    assert res.stderr == ("Get-Item : Cannot find path 'C:\\nope' because it does not exist.\n"
                          "    + FullyQualifiedErrorId : PathNotFound")


def test_exit_codes_are_returned(windows: FakeWindows, make_transport: MakeTransport) -> None:
    windows.add("exit 3", Reply(stdout="partial\r\n", stderr="boom", exit_code=3))
    windows.add("exit 0", Reply(exit_code=0))
    t = make_transport()
    res = t.run_powershell("Write-Output partial; exit 3")
    assert (res.exit_code, res.stdout, res.stderr, res.ok) == (3, "partial\r\n", "boom", False)
    assert t.run_powershell("exit 0").ok


def test_output_spread_over_several_receives_is_joined(windows: FakeWindows,
                                                       make_transport: MakeTransport,
                                                       endpoint: WSManServer) -> None:
    text = "".join(f"line {i}\r\n" for i in range(5000))
    windows.add("many lines", Reply(stdout=text, chunks=5))
    res = make_transport().run_powershell("# many lines")
    assert res.stdout == text and not res.truncated
    assert endpoint.actions.count("Receive") == 5


def test_output_is_capped(windows: FakeWindows, make_transport: MakeTransport) -> None:
    windows.add("big", Reply(stdout="y" * 50_000, chunks=3))
    t = make_transport()
    t.output_limit = 1000
    res = t.run_powershell("# big")
    assert res.truncated and res.stdout == "y" * 1000


def test_wrong_password_is_a_clear_401(endpoint: WSManServer,
                                       make_transport: MakeTransport) -> None:
    t = make_transport(ansible_password="Not-The-Pass-77")
    with pytest.raises(TransportError) as err:
        t.run_powershell("Get-Date")
    msg = str(err.value)
    assert err.value.host == "win01"
    for part in ("win01", "'upk-admin'", "basic authentication", "401", str(endpoint.port)):
        assert part in msg
    assert "Not-The-Pass-77" not in msg and endpoint.password not in msg
    assert endpoint.auth_failures == 1 and endpoint.open_shells == 0


def test_wsman_fault_is_decoded_and_the_shell_still_deleted(endpoint: WSManServer,
                                                            make_transport: MakeTransport) -> None:
    t = make_transport()
    endpoint.fail_next("Command", Fault("Access is denied.", 5, "w:AccessDenied", "s:Sender"))
    with pytest.raises(TransportError) as err:
        t.run_powershell("Get-Date")
    msg = str(err.value)
    assert "Access is denied." in msg and "WSManFault code 5" in msg
    assert "w:AccessDenied" in msg and "win01" in msg
    assert endpoint.open_shells == 1
    t.close()
    assert endpoint.open_shells == 0


def test_fault_while_receiving_still_signals_and_deletes(endpoint: WSManServer,
                                                         windows: FakeWindows,
                                                         make_transport: MakeTransport) -> None:
    windows.add("Get-Date", "today")
    t = make_transport()
    endpoint.fail_next("Receive", Fault("The WinRM service is shutting down.", 2150858770))
    with pytest.raises(TransportError, match="WSManFault code 2150858770"):
        t.run_powershell("Get-Date")
    assert endpoint.signals == [endpoint.executions[-1].command_id]
    # The shell survives a failed command and is reused.
    assert t.run_powershell("Get-Date").stdout == "today"
    t.close()
    assert (endpoint.shells_created, endpoint.open_shells) == (1, 0)


@pytest.mark.slow
def test_operation_timeout_becomes_timed_out_and_terminates(endpoint: WSManServer,
                                                            windows: FakeWindows,
                                                            make_transport: MakeTransport) -> None:
    windows.add("Start-Sleep", Reply(stdout="never", delay=60))
    windows.add("Get-Date", "today")
    t = make_transport()
    started = time.monotonic()
    res = t.run_powershell("Start-Sleep -Seconds 3600", timeout=1.5)
    elapsed = time.monotonic() - started
    assert res.timed_out and res.exit_code == -1 and not res.ok
    assert 1.4 < elapsed < 60  # at the timeout (never before), not after the 60 s reply
    sleeper = endpoint.executions[-1]
    assert sleeper.command_id in endpoint.signals
    assert t.run_powershell("Get-Date", timeout=5).stdout == "today"


def test_close_from_another_thread_stops_a_hung_command(endpoint: WSManServer,
                                                        windows: FakeWindows,
                                                        make_transport: MakeTransport) -> None:
    windows.add("hang", Reply(delay=60))
    t = make_transport(ansible_winrm_operation_timeout_sec=1, ansible_winrm_read_timeout_sec=5)
    t.open()
    sent = len(endpoint.executions)

    def close_once_running() -> None:
        wait_for(lambda: len(endpoint.executions) > sent, "the command to reach the endpoint")
        t.close()

    closer = threading.Thread(target=close_once_running)
    closer.start()
    started = time.monotonic()
    with pytest.raises(TransportError, match="closed while a command was still running"):
        t.run_powershell("# hang")
    closer.join(timeout=60)
    assert time.monotonic() - started < 60  # not after the 60 s reply
    assert endpoint.open_shells == 0
    assert endpoint.executions[-1].command_id in endpoint.signals


@pytest.mark.slow
def test_receive_long_poll_is_retried_until_done(windows: FakeWindows,
                                                 make_transport: MakeTransport,
                                                 endpoint: WSManServer) -> None:
    windows.add("slow", Reply(stdout="finished", delay=2.2))
    t = make_transport(ansible_winrm_operation_timeout_sec=1, ansible_winrm_read_timeout_sec=5)
    res = t.run_powershell("# slow", timeout=10)
    assert res.stdout == "finished" and not res.timed_out
    assert endpoint.actions.count("Receive") >= 3


@pytest.mark.slow
def test_server_that_stops_answering_hits_the_read_timeout(endpoint: WSManServer,
                                                           windows: FakeWindows,
                                                           make_transport: MakeTransport) -> None:
    windows.add("hang", Reply(delay=30))
    endpoint.ignore_operation_timeout = True
    t = make_transport(ansible_winrm_operation_timeout_sec=1, ansible_winrm_read_timeout_sec=2)
    with pytest.raises(TransportError, match=r"no answer from 127\.0\.0\.1:\d+ \(win01\) "
                                             r"within 2s"):
        t.run_powershell("# hang", timeout=30)


def test_connection_refused_names_host_and_port(endpoint: WSManServer,
                                                make_transport: MakeTransport) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = make_transport(ansible_port=port)
    with pytest.raises(TransportError) as err:
        t.run("hostname")
    assert f"127.0.0.1:{port}" in str(err.value) and "connection refused" in str(err.value)


def test_expired_shell_is_replaced(endpoint: WSManServer, windows: FakeWindows,
                                   make_transport: MakeTransport) -> None:
    windows.add("Get-Date", "today")
    t = make_transport()
    assert t.run_powershell("Get-Date").ok
    endpoint.expire_shells()
    assert t.run_powershell("Get-Date").stdout == "today"
    assert endpoint.shells_created == 2


def test_cmd_commands_and_list_quoting(endpoint: WSManServer, windows: FakeWindows,
                                       make_transport: MakeTransport) -> None:
    windows.add("re:^ipconfig", Reply(stdout="Windows IP Configuration\r\n"))
    windows.add("re:^findstr", lambda ex: Reply(exit_code=1))
    t = make_transport()
    res = t.run("ipconfig /all")
    assert res.stdout == "Windows IP Configuration\r\n" and res.command == "ipconfig /all"
    assert endpoint.executions[-1].command == "ipconfig /all"
    res = t.run(["findstr", "/c:a&b|c", r"C:\Data Files\log %TEMP%.txt"])
    assert res.exit_code == 1
    assert endpoint.executions[-1].command == (
        r'findstr /c:a^&b^|c ^"C:\Data Files\log ^%TEMP^%.txt^"')


def test_cmd_stdin_is_streamed(endpoint: WSManServer, windows: FakeWindows,
                               make_transport: MakeTransport) -> None:
    windows.add("re:^sort", lambda ex: "\r\n".join(sorted(ex.stdin.decode().split())) + "\r\n")
    res = make_transport().run("sort", stdin="pear\napple\n")
    assert res.stdout == "apple\r\npear\r\n"
    assert not endpoint.executions[-1].console_mode_stdin


def test_env_values_never_reach_a_command_line(endpoint: WSManServer, windows: FakeWindows,
                                               make_transport: MakeTransport) -> None:
    def answer(ex: Execution) -> Reply:
        return Reply(stdout="saw-secret" if "'S3cr3t''Val'" in ex.stdin_text else "no-secret")

    windows.add("ProcessStartInfo", answer)
    res = make_transport().run(["backup.exe", "--check"], env={"REPO_PASS": "S3cr3t'Val"})
    assert res.stdout == "saw-secret"
    ex = endpoint.executions[-1]
    assert "S3cr3t" not in ex.command and "S3cr3t" not in (ex.encoded_script or "")
    assert "'REPO_PASS'" in ex.stdin_text and "'backup.exe --check'" in ex.stdin_text


def test_windows_facts(make_transport: MakeTransport, endpoint: WSManServer) -> None:
    facts = make_transport().gather_facts()
    assert facts["os_family"] == "windows"
    assert facts["os_caption"] == "Microsoft Windows Server 2022 Standard"
    assert (facts["os_version"], facts["os_build"]) == ("10.0.20348", 20348)
    assert (facts["hostname"], facts["domain"]) == ("SRV-FILE01", "corp.example.com")
    assert facts["fqdn"] == "srv-file01.corp.example.com"
    assert facts["last_boot"].startswith("2025-11-24T")
    assert facts["is_root"] is True
    assert len(endpoint.executions) == 1


def test_facts_failure_is_reported_not_fatal(windows: FakeWindows,
                                             make_transport: MakeTransport) -> None:
    windows.add("Win32_OperatingSystem", Reply(stderr="Get-CimInstance : Invalid class",
                                               exit_code=1))
    facts = make_transport().gather_facts()
    assert facts["os_family"] == "windows" and "Invalid class" in facts["facts_error"]


def test_bad_settings_fail_on_first_use_with_the_variable_named(
        make_transport: MakeTransport) -> None:
    t = make_transport(ansible_winrm_operation_timeout_sec=40, ansible_winrm_read_timeout_sec=30)
    with pytest.raises(TransportError, match="ansible_winrm_read_timeout_sec"):
        t.run("hostname")


def test_encryption_always_with_basic_is_refused_clearly(make_transport: MakeTransport) -> None:
    t = make_transport(ansible_winrm_message_encryption="always")
    with pytest.raises(TransportError, match=r"message_encryption: always needs ntlm.*basic"):
        t.run("hostname")


def test_password_never_logged(endpoint: WSManServer, windows: FakeWindows,
                               make_transport: MakeTransport,
                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    windows.add("Get-Date", "today")
    t = make_transport()
    t.run_powershell("Get-Date")
    t.close()
    with pytest.raises(TransportError):
        make_transport(ansible_password="Other-Secret-1").run("x")
    assert "basic authentication over plain HTTP" in caplog.text
    assert endpoint.password not in caplog.text and "Other-Secret-1" not in caplog.text
    assert endpoint.password not in repr(t.config)


def test_transport_can_be_reopened_after_close(endpoint: WSManServer, windows: FakeWindows,
                                               make_transport: MakeTransport) -> None:
    windows.add("Get-Date", "today")
    t = make_transport()
    assert t.run_powershell("Get-Date").ok
    t.close()
    assert t.run_powershell("Get-Date").stdout == "today"
    t.close()
    assert (endpoint.shells_created, endpoint.open_shells) == (2, 0)


@pytest.mark.parametrize(("auth", "flag"), [("kerberos", "HAVE_KERBEROS"),
                                            ("credssp", "HAVE_CREDSSP")])
def test_missing_auth_library_is_named(make_transport: MakeTransport, endpoint: WSManServer,
                                       auth: str, flag: str) -> None:
    import winrm.transport

    if getattr(winrm.transport, flag):
        pytest.skip(f"{auth} support is installed here")
    t = make_transport(ansible_winrm_transport=auth)
    with pytest.raises(TransportError, match=f"win01.*{auth}.*not installed"):
        t.run("hostname")
    assert endpoint.shells_created == 0
