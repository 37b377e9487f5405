"""Pure parts of the winrm plugin: settings, quoting, script wrapping, CLIXML, facts."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest

from upkeeper import TransportError
from upkeeper.powershell import parse_ps_json
from upkeeper_winrm.clixml import decode_clixml, unescape
from upkeeper_winrm.config import config_from_vars
from upkeeper_winrm.facts import parse_windows_facts
from upkeeper_winrm.scripts import (
    CMD_LINE_LIMIT,
    cmd_join,
    decode_command,
    encode_command,
    powershell_invocation,
    quote_windows_arg,
    wrap_powershell,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "winrm"
BASE = {"ansible_user": "svc", "ansible_password": "pw"}


def cfg(**vars_: object):  # type: ignore[no-untyped-def]
    return config_from_vars("srv01", {**BASE, **vars_})


def test_defaults_follow_ansible() -> None:
    c = cfg()
    assert (c.scheme, c.port, c.path, c.auth) == ("https", 5986, "/wsman", "ntlm")
    assert (c.cert_validation, c.message_encryption) == ("validate", "auto")
    assert (c.operation_timeout, c.read_timeout) == (20, 30)
    assert c.endpoint == "https://srv01:5986/wsman"


@pytest.mark.parametrize(("vars_", "endpoint"), [
    ({"ansible_port": 5985}, "http://srv01:5985/wsman"),
    ({"ansible_winrm_scheme": "http"}, "http://srv01:5985/wsman"),
    ({"ansible_host": "10.0.0.5", "ansible_port": "15986"}, "https://10.0.0.5:15986/wsman"),
    ({"ansible_host": "fe80::1", "ansible_winrm_path": "custom"}, "https://[fe80::1]:5986/custom"),
])
def test_endpoint(vars_: dict[str, object], endpoint: str) -> None:
    assert cfg(**vars_).endpoint == endpoint


@pytest.mark.parametrize(("raw", "auth"), [
    ("Kerberos", "kerberos"), (["credssp", "ntlm"], "credssp"), ("basic,ntlm", "basic"),
    ("plaintext", "basic"), (None, "ntlm"),
])
def test_auth_transport(raw: object, auth: str) -> None:
    assert cfg(ansible_winrm_transport=raw).auth == auth


@pytest.mark.parametrize(("vars_", "message"), [
    ({"ansible_winrm_transport": "digest"}, "ansible_winrm_transport 'digest' is not supported"),
    ({"ansible_password": None}, "ansible_password is required"),
    ({"ansible_user": ""}, "ansible_user is required"),
    ({"ansible_winrm_transport": "certificate"}, "ansible_winrm_cert_pem"),
    ({"ansible_winrm_scheme": "ftp"}, "ansible_winrm_scheme must be http or https"),
    ({"ansible_port": "abc"}, "ansible_port must be a number"),
    ({"ansible_winrm_server_cert_validation": "no"}, "validate or ignore"),
    ({"ansible_winrm_message_encryption": "sometimes"}, "auto, always or never"),
    ({"ansible_winrm_operation_timeout_sec": 30, "ansible_winrm_read_timeout_sec": 30},
     r"ansible_winrm_read_timeout_sec \(30\) must be greater than"),
    ({"ansible_winrm_operation_timeout_sec": "0"}, "at least 1"),
])
def test_bad_settings_name_the_variable(vars_: dict[str, object], message: str) -> None:
    with pytest.raises(TransportError, match=message) as err:
        cfg(**vars_)
    assert err.value.host == "srv01"


def test_timeouts_stay_consistent() -> None:
    assert cfg(ansible_winrm_operation_timeout_sec=60).read_timeout == 70
    c = cfg(ansible_winrm_operation_timeout_sec="5", ansible_winrm_read_timeout_sec="8")
    assert (c.operation_timeout, c.read_timeout) == (5, 8)


def test_kerberos_needs_no_password_and_repr_hides_it() -> None:
    c = config_from_vars("dc01", {"ansible_winrm_transport": "kerberos",
                                  "ansible_user": "admin@CORP.EXAMPLE.COM"})
    assert c.auth == "kerberos" and c.password == ""
    assert "pw" not in repr(cfg()).replace("password", "")


WIN_ARGS = [
    "plain", "two words", 'say "hi"', "C:\\Program Files\\", "trail\\", 'a\\"b', "", "tab\there",
]


@pytest.mark.parametrize("arg", WIN_ARGS)
def test_windows_arg_quoting_matches_list2cmdline(arg: str) -> None:
    assert quote_windows_arg(arg) == subprocess.list2cmdline([arg])


def test_cmd_join_escapes_every_metacharacter() -> None:
    assert cmd_join(["dir", "C:\\Users"]) == "dir C:\\Users"
    line = cmd_join(["echo", "a&b|c", "50%", "(x)", "<in>", "^", "!v!"])
    assert line == "echo a^&b^|c 50^% ^(x^) ^<in^> ^^ ^!v^!"
    # Outside the escapes nothing is left that cmd.exe would interpret.
    assert not re.search(r'(?<!\^)[&|<>()%!"]', line.replace("^^", ""))
    assert cmd_join(["findstr", 'a "q" b']) == r'findstr ^"a \^"q\^" b^"'


def test_encoded_command_round_trip() -> None:
    text = "Write-Output 'Größe ☃ 😀'"
    payload = encode_command(text)
    assert base64.b64decode(payload) == text.encode("utf-16-le")
    assert decode_command(payload) == text


def test_wrapper_quotes_the_script_and_forces_exit_codes() -> None:
    script = "Write-Output 'it''s'; exit 4 # }"
    wrapped = wrap_powershell(script)
    assert "$__upk_src = 'Write-Output ''it''''s''; exit 4 # }'" in wrapped
    assert "$ErrorActionPreference = 'Stop'" in wrapped
    assert "exit 1" in wrapped and "exit $global:LASTEXITCODE" in wrapped
    assert "UTF8Encoding" in wrapped


def test_invocation_switches_to_stdin_before_the_cmd_limit() -> None:
    inline = powershell_invocation("x" * 100)
    assert inline.stdin is None and len(inline.command) < CMD_LINE_LIMIT
    longest_inline = max(n for n in range(1000, 6000, 50)
                         if powershell_invocation("x" * n).stdin is None)
    assert len(powershell_invocation("x" * longest_inline).command) <= CMD_LINE_LIMIT
    big = powershell_invocation("Write-Output 'é'\n" * 50_000)
    assert big.stdin is not None and len(big.command) < CMD_LINE_LIMIT
    assert base64.b64decode(big.stdin).decode("utf-8") == "Write-Output 'é'\n" * 50_000
    forced = powershell_invocation("short", force_stdin=True)
    assert forced.stdin is not None and "short" not in decode_command(forced.command.split()[-1])


def test_clixml_error_record_is_readable() -> None:
    text = (DATA / "clixml_error_ps51.txt").read_text(encoding="utf-8")
    assert decode_clixml(text) == (
        "Get-Item : Cannot find path 'C:\\Backups\\nightly' because it does not exist.\n"
        "At line:1 char:1\n"
        "+ Get-Item C:\\Backups\\nightly\n"
        "+ ~~~~~~~~~~~~~~~~~~~~~~~~~~\n"
        "    + CategoryInfo          : ObjectNotFound: (C:\\Backups\\nightly:String) [Get-Item], "
        "ItemNotFoundException\n"
        "    + FullyQualifiedErrorId : PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand")


def test_clixml_streams_escapes_and_entities() -> None:
    text = (DATA / "clixml_streams_ps51.txt").read_text(encoding="utf-8")
    assert decode_clixml(text).splitlines() == [
        "WARNING: Disk D: is 91% full & growing",
        "VERBOSE: Checked 3 volumes",
        "Größe unbekannt: é😀 snake_case",
    ]


def test_clixml_mixed_with_plain_text_and_several_documents() -> None:
    text = (DATA / "clixml_mixed.txt").read_text(encoding="utf-8")
    assert decode_clixml(text).splitlines() == [
        "The system cannot find the path specified.", "first", "second"]


def test_clixml_truncated_document_falls_back() -> None:
    text = (DATA / "clixml_truncated.txt").read_text(encoding="utf-8")
    out = decode_clixml(text)
    assert "truncated <thing> here" in out and "CLIXML" not in out


def test_plain_stderr_passes_through_and_unescape() -> None:
    assert decode_clixml("Access is denied.\r\n") == "Access is denied.\r\n"
    assert unescape("a_x000D__x000A_b_x0009_c") == "a\r\nb\tc"


def test_clixml_from_pywinrm_corpus_sample(corpus: Path) -> None:
    xml = (corpus / "winrm_soap" / "pywinrm_get_ps_output_response.xml").read_text()
    chunks = re.findall(r'Name="stderr"[^>]*>([A-Za-z0-9+/=]+)<', xml)
    chunks += re.findall(r'CommandId="[^"]+" Name="stderr">([A-Za-z0-9+/=]+)<', xml)
    raw = b"".join(base64.b64decode(c) for c in dict.fromkeys(chunks)).decode()
    assert raw.startswith("#< CLIXML")
    out = decode_clixml(raw)
    assert out.splitlines()[0] == 'Write-Error "Error" : Error'
    assert "_x000D_" not in out and "<S" not in out


def test_facts_server_2022_ps51() -> None:
    facts = parse_windows_facts(parse_ps_json(
        (DATA / "facts_server2022_ps51.json").read_text(encoding="utf-8")))
    assert facts["os_family"] == "windows"
    assert facts["os_caption"] == "Microsoft Windows Server 2022 Standard"
    assert (facts["os_version"], facts["os_build"]) == ("10.0.20348", 20348)
    assert (facts["hostname"], facts["domain"], facts["workgroup"]) == (
        "SRV-FILE01", "corp.example.com", None)
    assert facts["fqdn"] == "srv-file01.corp.example.com"
    assert facts["product_type"] == "server" and facts["is_root"] is True
    assert facts["last_boot"] == "2025-11-24T16:00:00+00:00"
    assert facts["user"] == "CORP\\upk-admin"


def test_facts_workgroup_laptop_ps7() -> None:
    facts = parse_windows_facts(json.loads(
        (DATA / "facts_win11_workgroup_ps7.json").read_text(encoding="utf-8")))
    assert (facts["domain"], facts["workgroup"]) == (None, "WORKGROUP")
    assert facts["fqdn"] == "laptop-7" and facts["product_type"] == "workstation"
    assert facts["last_boot"] == "2025-11-20T08:15:00.5+01:00"
    assert facts["is_root"] is False and facts["ps_version"] == "7.4.6"


def test_facts_tolerate_empty_output() -> None:
    facts = parse_windows_facts(None)
    assert facts["os_family"] == "windows" and facts["hostname"] is None
