"""Byte scripts: a small, human-editable text format that replays what a serial device sends.

A script is a list of lines, each one step::

    # a PN532 answering one poll with a 4-byte card
    pn532-ack
    pn532-frame D5 4B 01 01 00 04 08 04 DE AD BE EF
    wait 0.5                      # seconds of silence
    hex 00 00 FF 00 FF 00         # raw bytes, spaces optional
    text "4006381333931\\r\\n"     # UTF-8 text with \\r \\n \\t \\0 \\\\ \\" escapes; \\xNN is one raw byte

``pn532-frame`` builds a normal information frame around the given TFI and
data (LEN, LCS and DCS computed), so scripts stay writable by hand.
Everything after an unquoted ``#`` is a comment. Errors name the file and line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from drivers.serial.pn532 import ACK_FRAME, information_frame


class ScriptError(ValueError):
    """A byte script line could not be understood; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Send:
    """Bytes the device sends (one step: delivered by one transport read)."""

    data: bytes
    line: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Silence on the line for ``seconds``."""

    seconds: float
    line: int


Step = Send | Wait

_ESCAPES = {"r": "\r", "n": "\n", "t": "\t", "\\": "\\", '"': '"', "0": "\0"}
_HEX_BYTE = re.compile(r"^[0-9A-Fa-f]{2}$")


def _strip_comment(line: str) -> str:
    in_string = False
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and in_string:
            escaped = True
        elif ch == '"':
            in_string = not in_string
        elif ch == "#" and not in_string:
            return line[:i]
    return line


def _hex_bytes(text: str, where: str) -> bytes:
    tokens = text.split()
    if len(tokens) == 1 and len(tokens[0]) > 2:  # "0000FF00FF00" without spaces
        compact = tokens[0]
        if not all(c in "0123456789abcdefABCDEF" for c in compact):
            raise ScriptError(f"{where}: {compact!r} is not hex bytes (write e.g. 00 FF or 00FF)")
        if len(compact) % 2:
            raise ScriptError(f"{where}: odd number of hex digits in {compact!r}")
        tokens = [compact[i : i + 2] for i in range(0, len(compact), 2)]
    out = bytearray()
    for token in tokens:
        if not _HEX_BYTE.match(token):
            raise ScriptError(f"{where}: {token!r} is not a hex byte (two digits 00-FF expected)")
        out.append(int(token, 16))
    if not out:
        raise ScriptError(f"{where}: no bytes given")
    return bytes(out)


def _quoted(text: str, where: str) -> bytes:
    text = text.strip()
    if len(text) < 2 or not text.startswith('"') or not text.endswith('"'):
        raise ScriptError(f'{where}: text needs one double-quoted string, e.g. text "1234\\r\\n" (got {text!r})')
    body = text[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == '"':
            raise ScriptError(f'{where}: unescaped " inside the string (write \\")')
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        if i + 1 >= len(body):
            raise ScriptError(f"{where}: string ends with a lone backslash")
        code = body[i + 1]
        if code == "x":
            digits = body[i + 2 : i + 4]
            if not _HEX_BYTE.match(digits):
                raise ScriptError(f"{where}: \\x needs two hex digits (got {digits!r})")
            out.append(int(digits, 16))
            i += 4
            continue
        if code not in _ESCAPES:
            raise ScriptError(f'{where}: unknown escape \\{code} (use \\r \\n \\t \\0 \\xNN \\\\ \\")')
        out += _ESCAPES[code].encode("ascii")
        i += 2
    data = bytes(out)
    if not data:
        raise ScriptError(f"{where}: empty string")
    return data


def parse_script(text: str, source: str = "<script>") -> list[Step]:
    """Parse a whole script; :class:`ScriptError` at the first bad line, naming ``source:line``."""
    steps: list[Step] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        where = f"{source}:{number}"
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        if keyword == "hex":
            steps.append(Send(_hex_bytes(rest, f"{where}: hex"), number))
        elif keyword == "text":
            steps.append(Send(_quoted(rest, where), number))
        elif keyword == "pn532-frame":
            payload = _hex_bytes(rest, f"{where}: pn532-frame")
            if len(payload) > 254:
                raise ScriptError(f"{where}: pn532-frame holds at most 254 bytes (got {len(payload)})")
            steps.append(Send(information_frame(payload), number))
        elif keyword == "pn532-ack":
            if rest:
                raise ScriptError(f"{where}: pn532-ack takes no arguments (got {rest!r})")
            steps.append(Send(ACK_FRAME, number))
        elif keyword == "wait":
            try:
                seconds = float(rest)
            except ValueError:
                raise ScriptError(f"{where}: wait needs a number of seconds (got {rest!r})") from None
            if not math.isfinite(seconds) or seconds < 0 or seconds > 3600:
                raise ScriptError(f"{where}: wait must be between 0 and 3600 seconds (got {rest})")
            steps.append(Wait(seconds, number))
        else:
            raise ScriptError(f"{where}: unknown step {keyword!r} (expected hex, text, wait, pn532-frame or pn532-ack)")
    if not any(isinstance(s, Send) for s in steps):
        raise ScriptError(f"{source}: the script sends no bytes")
    return steps


def load_script(path: Path) -> list[Step]:
    """Read and parse a script file; errors name the file (and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{path}: cannot read byte script ({exc})") from None
    return parse_script(text, str(path))
