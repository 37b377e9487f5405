"""TLS certificates: probing the host's listening TCP ports from the host itself (the
collector never opens a connection of its own), reading given certificate files (only
their CERTIFICATE blocks leave the host, never a key), and parsing with ``cryptography``."""

from __future__ import annotations

import base64
import re
import shlex
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from upkeeper.powershell import ps_quote
from upkeeper_docs.facts import iso, short

CERT_MARK = "@@upk-cert:"
_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\s+([A-Za-z0-9+/=\s]+?)\s*"
                     r"-----END CERTIFICATE-----")
#: Prints CERTIFICATE blocks only: any other BEGIN line (a private key) ends a block before
#: it is printed, so even a broken bundle never sends a key off the host.
CERT_BLOCKS = ("awk '/-----BEGIN / && !/-----BEGIN CERTIFICATE-----/ {p=0} "
               "/-----BEGIN CERTIFICATE-----/ {p=1} p {print} "
               "/-----END CERTIFICATE-----/ {p=0}'")
#: Glob characters a certificate path may use; such a path must be made of these only.
_SAFE_GLOB = re.compile(r"^/[A-Za-z0-9_./*?\[\]@+-]+$")


def probe_target(address: str) -> str:
    """Where the host connects to reach a socket bound to ``address``."""
    if address in ("*", "0.0.0.0"):
        return "127.0.0.1"
    if address == "::":
        return "::1"
    return address


def linux_script(targets: list[tuple[str, str, int]], files: list[str],
                 timeout: int, servername: str | None) -> str:
    """Probe ``(label, address, port)`` targets in parallel with ``openssl s_client``
    (python3 where openssl is missing), then print the certificate blocks of ``files``."""
    sni = f" -servername {shlex.quote(servername)}" if servername else ""
    lines = [
        "LC_ALL=C; export LC_ALL",
        'd=$(mktemp -d 2>/dev/null) || d=""',
        "trap '[ -n \"$d\" ] && rm -rf \"$d\"' EXIT",
        "have() { command -v \"$1\" >/dev/null 2>&1; }",
        "probe() {",
        "  if ! have timeout; then echo '!no timeout command on the host'",
        "  elif have openssl; then",
        f"    timeout {timeout} openssl s_client -connect \"$1\"{sni} </dev/null 2>/dev/null"
        f" | {CERT_BLOCKS}",
        "  elif have python3; then",
        f"    timeout {timeout} python3 -c 'import socket,ssl,sys; socket.setdefaulttimeout("
        f"{timeout}); h,p=sys.argv[1].rsplit(\":\",1); "
        "print(ssl.get_server_certificate((h.strip(\"[]\"),int(p))))' \"$1\" 2>/dev/null",
        "  else echo '!neither openssl nor python3 on the host'; fi",
        "}",
    ]
    for n, (label, address, port) in enumerate(targets):
        host = f"[{address}]" if ":" in address else address
        target = shlex.quote(f"{host}:{port}")
        lines.append(f'if [ -n "$d" ]; then probe {target} > "$d/{n}" & '
                     f'else echo {shlex.quote(CERT_MARK + label)}; probe {target}; fi')
    lines.append("wait")
    for n, (label, _, _) in enumerate(targets):
        lines.append(f'if [ -n "$d" ]; then echo {shlex.quote(CERT_MARK + label)}; '
                     f'cat "$d/{n}"; fi')
    for path in files:
        operand = path if _SAFE_GLOB.match(path) and re.search(r"[*?\[]", path) \
            else shlex.quote(path)
        lines += [
            f"for f in {operand}; do",
            f"  echo {shlex.quote(CERT_MARK)}\"$f\"",
            "  if [ ! -e \"$f\" ]; then echo '!no such file'",
            "  elif [ ! -r \"$f\" ]; then echo '!not readable (set sudo: true?)'",
            "  elif grep -q -e '-----BEGIN CERTIFICATE-----' -- \"$f\"; then",
            f"    {CERT_BLOCKS} \"$f\"",
            "  elif have openssl; then",
            "    openssl x509 -inform DER -in \"$f\" -outform PEM 2>/dev/null"
            " || echo '!not a certificate (PEM or DER)'",
            "  else echo '!not PEM, and no openssl to read DER'; fi",
            "done",
        ]
    return "\n".join(lines) + "\n"


def split_output(text: str) -> list[tuple[str, str]]:
    """``(source, text)`` per probe or file, in order."""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith(CERT_MARK):
            out.append((line[len(CERT_MARK):], ""))
        elif out:
            out[-1] = (out[-1][0], out[-1][1] + line + "\n")
    return out


def pem_blocks(text: str) -> list[bytes]:
    """DER of each certificate in ``text``."""
    blocks = []
    for m in _PEM_RE.finditer(text):
        try:
            blocks.append(base64.b64decode("".join(m.group(1).split())))
        except ValueError:
            continue
    return blocks


def describe(der: bytes, source: str) -> dict[str, Any]:
    """The document's certificate item. :raises ValueError: not a certificate."""
    cert = x509.load_der_x509_certificate(der)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(v) for v in ext.get_values_for_type(x509.DNSName)]
        sans += [str(v) for v in ext.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    except ValueError:
        sans = []
    return {
        "source": source,
        "subject": cert.subject.rfc4514_string(),
        "sans": sorted(sans),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": iso(_aware(cert, "not_valid_before")),
        "not_after": iso(_aware(cert, "not_valid_after")),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def _aware(cert: x509.Certificate, name: str) -> datetime:
    utc = getattr(cert, f"{name}_utc", None)  # cryptography >= 42
    if isinstance(utc, datetime):
        return utc
    value: datetime = getattr(cert, name)
    return value.replace(tzinfo=timezone.utc)


def items_from(source: str, text: str, leaf_only: bool) -> tuple[list[dict[str, Any]], str]:
    """Certificate items found in one probe's or file's text, and a problem if none."""
    problem = next((ln[1:] for ln in text.splitlines() if ln.startswith("!")), "")
    items: list[dict[str, Any]] = []
    blocks = pem_blocks(text)
    for der in blocks[:1] if leaf_only else blocks:
        try:
            items.append(describe(der, source))
        except ValueError as exc:
            problem = f"unreadable certificate: {short(str(exc))}"
    if not items and not problem:
        problem = "no TLS handshake (not a TLS port)" if leaf_only else "no certificate"
    return items, problem


def windows_script(targets: list[tuple[str, str, int]], files: list[str],
                   stores: list[str], timeout: int, servername: str | None) -> str:
    """The same on Windows: TLS handshakes with SslStream, files and certificate stores
    read with X509Certificate2 (only public parts: RawData)."""
    # One Add per target: @(@(a,b,c)) would flatten a single target into its parts.
    rows = "".join(f"[void]$targets.Add(@({ps_quote(label)},{ps_quote(addr)},{int(port)}))\n"
                   for label, addr, port in targets)
    name = ps_quote(servername) if servername else "$null"
    return f"""
$ms = {int(timeout) * 1000}
$accept = [System.Net.Security.RemoteCertificateValidationCallback]{{ $true }}
$targets = New-Object System.Collections.ArrayList
{rows}foreach ($t in $targets) {{
  $r = [ordered]@{{ source = $t[0]; der = $null; error = $null }}
  # TcpClient() is IPv4 only on .NET Framework.
  $fam = if ($t[1] -like '*:*') {{ 'InterNetworkV6' }} else {{ 'InterNetwork' }}
  $c = New-Object System.Net.Sockets.TcpClient([System.Net.Sockets.AddressFamily]$fam)
  try {{
    $ar = $c.BeginConnect($t[1], [int]$t[2], $null, $null)
    if (-not $ar.AsyncWaitHandle.WaitOne($ms)) {{ throw 'connect timed out' }}
    $c.EndConnect($ar); $c.ReceiveTimeout = $ms; $c.SendTimeout = $ms
    $s = New-Object System.Net.Security.SslStream($c.GetStream(), $false, $accept)
    $sni = {name}; if (-not $sni) {{ $sni = $t[1] }}
    # .NET Framework under PowerShell 5.1 may default to TLS 1.0 only: ask for 1.2 too.
    $s.AuthenticateAsClient($sni, $null,
        [System.Security.Authentication.SslProtocols]'Tls12, Tls11, Tls', $false)
    $r.der = [Convert]::ToBase64String($s.RemoteCertificate.GetRawCertData())
  }} catch {{ $r.error = $_.Exception.Message }} finally {{ $c.Close() }}
  [pscustomobject]$r
}}
foreach ($f in @({",".join(ps_quote(f) for f in files)})) {{
  $r = [ordered]@{{ source = $f; der = $null; error = $null }}
  try {{
    $x = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2($f)
    $r.der = [Convert]::ToBase64String($x.RawData)
  }} catch {{ $r.error = $_.Exception.Message }}
  [pscustomobject]$r
}}
foreach ($st in @({",".join(ps_quote(s) for s in stores)})) {{
  try {{
    foreach ($x in @(Get-ChildItem -Path ('Cert:\\' + $st) -ErrorAction Stop |
        Where-Object {{ $_.RawData }})) {{
      [pscustomobject]@{{ source = 'store:' + $st; der = [Convert]::ToBase64String($x.RawData);
                          error = $null }}
    }}
  }} catch {{ [pscustomobject]@{{ source = 'store:' + $st; der = $null;
                                  error = $_.Exception.Message }} }}
}}
"""
