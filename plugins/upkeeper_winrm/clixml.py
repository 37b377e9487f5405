"""Turn the CLIXML that powershell.exe writes to a redirected stderr into readable text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

CLIXML_MARKER = "#< CLIXML"
# A document cut short (output cap, killed process) runs to the end of the text.
_OBJS_RE = re.compile(r"<Objs\b.*?(?:</Objs>|\Z)", re.S)
_ESCAPE_RE = re.compile(r"(?:_x[0-9A-Fa-f]{4}_)+")
_NS_RE = re.compile(r"""\sxmlns(?::\w+)?=("[^"]*"|'[^']*')""")
_S_RE = re.compile(r"""<S\s+S=["'](\w+)["']\s*>(.*?)</S>""", re.S)
_STREAM_PREFIX = {"error": "", "warning": "WARNING: ", "verbose": "VERBOSE: ",
                  "debug": "DEBUG: ", "information": ""}


def unescape(text: str) -> str:
    """Decode PowerShell's ``_xHHHH_`` escapes (``_x000D__x000A_`` is CRLF).

    Runs of escapes are decoded together so UTF-16 surrogate pairs become one character.
    """
    def repl(m: re.Match[str]) -> str:
        units = [int(u, 16) for u in re.findall(r"_x([0-9A-Fa-f]{4})_", m.group(0))]
        raw = b"".join(u.to_bytes(2, "little") for u in units)
        return raw.decode("utf-16-le", errors="replace")

    return _ESCAPE_RE.sub(repl, text)


def _strings(objs_xml: str) -> list[tuple[str, str]]:
    """(stream, text) for each ``<S S="stream">`` in one ``<Objs>`` document."""
    try:
        root = ET.fromstring(_NS_RE.sub("", objs_xml))
    except ET.ParseError:
        # A truncated or odd document: fall back to a tolerant scan of the strings.
        return [(m.group(1), _xml_unescape(m.group(2))) for m in _S_RE.finditer(objs_xml)]
    out: list[tuple[str, str]] = []
    for node in root.iter("S"):
        stream = node.get("S")
        if stream:
            out.append((stream, node.text or ""))
    return out


def _xml_unescape(text: str) -> str:
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&apos;", "'").replace("&amp;", "&"))


def decode_clixml(text: str) -> str:
    """Readable text for stderr that may hold CLIXML; other text passes through.

    Error strings are kept as they are, warnings/verbose/debug get their usual prefix,
    progress records are dropped. Plain lines around the CLIXML documents are kept.
    """
    if CLIXML_MARKER not in text:
        return text
    parts: list[str] = []
    pos = 0
    for m in _OBJS_RE.finditer(text):
        plain = text[pos:m.start()].replace(CLIXML_MARKER, "").strip()
        if plain:
            parts.append(plain)
        pos = m.end()
        lines: list[str] = []
        current_stream = ""
        for stream, value in _strings(m.group(0)):
            key = stream.lower()
            if key not in _STREAM_PREFIX:
                continue
            value = unescape(value)
            # Long messages arrive split across several <S> elements of the same stream.
            if lines and key == current_stream and not lines[-1].endswith("\n"):
                lines[-1] += value
            else:
                lines.append(_STREAM_PREFIX[key] + value)
            current_stream = key
        parts.extend(line.rstrip() for line in lines if line.strip())
    tail = text[pos:].replace(CLIXML_MARKER, "").strip()
    if tail:
        parts.append(tail)
    return "\n".join(p.replace("\r\n", "\n") for p in parts)
