"""Pure parsers for line-oriented serial readers: ASCII card readers, RDM6300 125 kHz frames, barcodes.

Everything here works on bytes and strings only (no ports, no clocks) so it can
be fuzzed. Bad input is reported as ``None`` (plus a reason the driver counts),
never as an exception and never as a read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

STX = 0x02
ETX = 0x03
GS = "\x1d"


class LineSplitter:
    """Splits a byte stream into lines ended by CR, LF or CR LF; overlong lines are dropped whole.

    A CR LF pair split across two reads still ends one line, because an empty
    line after CR is ignored. ``overflows`` counts dropped overlong lines.
    """

    def __init__(self, max_line: int = 256) -> None:
        self._buffer = bytearray()
        self._max_line = max_line
        self._discarding = False
        self.overflows = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self._discarding:
                    self._discarding = False
                elif self._buffer:
                    lines.append(bytes(self._buffer))
                self._buffer.clear()
                continue
            if self._discarding:
                continue
            self._buffer.append(byte)
            if len(self._buffer) > self._max_line:
                self._buffer.clear()
                self._discarding = True
                self.overflows += 1
        return lines

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer)

    def clear(self) -> None:
        self._buffer.clear()
        self._discarding = False


CardFormat = Literal["hex", "decimal"]
_HEX_SEPARATORS = re.compile(r"[\s:.-]")


def parse_card_line(
    line: bytes,
    fmt: CardFormat,
    uid_bytes: int = 4,
    reverse: bool = False,
    strip_prefix: str = "",
) -> str | None:
    """The UID (upper-case hex) printed on one reader line, or ``None`` when the line is not a UID.

    ``hex``: hex digits, optionally separated by ``:``, ``-``, ``.`` or spaces
    (4, 7 or 10 bytes). ``decimal``: the UID as an unsigned decimal number of
    ``uid_bytes`` bytes (the common "10-digit" readers). ``reverse`` flips the
    byte order for readers that print the UID little-endian.
    """
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if strip_prefix:
        if not text.startswith(strip_prefix):
            return None
        text = text[len(strip_prefix) :].strip()
    if not text:
        return None
    if fmt == "hex":
        compact = _HEX_SEPARATORS.sub("", text)
        if not compact or len(compact) % 2 or len(compact) // 2 not in (4, 7, 10):
            return None
        try:
            uid = bytes.fromhex(compact)
        except ValueError:
            return None
    else:
        if not text.isdigit() or not text.isascii() or len(text) > 25:
            return None
        value = int(text)
        if value >= 1 << (8 * uid_bytes):
            return None
        uid = value.to_bytes(uid_bytes, "big")
    if reverse:
        uid = uid[::-1]
    return uid.hex().upper()


def parse_rdm6300(frame: bytes) -> str | None:
    """The tag id of one RDM6300 frame body (between STX and ETX), or ``None`` when invalid.

    The body is 10 ASCII hex digits (version byte + 4-byte tag) and 2 ASCII hex
    digits of checksum: the XOR of the five data bytes.
    """
    if len(frame) != 12:
        return None
    try:
        text = frame.decode("ascii")
        if not all(c in "0123456789ABCDEFabcdef" for c in text):
            return None
        data = bytes.fromhex(text[:10])
        checksum = int(text[10:], 16)
    except (UnicodeDecodeError, ValueError):
        return None
    x = 0
    for b in data:
        x ^= b
    return data.hex().upper() if x == checksum else None


class Rdm6300Splitter:
    """Finds ``STX body ETX`` frames in a byte stream; bytes outside frames are noise."""

    def __init__(self) -> None:
        self._buffer: bytearray | None = None

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        for byte in data:
            if byte == STX:
                self._buffer = bytearray()
            elif byte == ETX:
                if self._buffer is not None:
                    frames.append(bytes(self._buffer))
                self._buffer = None
            elif self._buffer is not None:
                self._buffer.append(byte)
                if len(self._buffer) > 32:
                    self._buffer = None
        return frames

    def clear(self) -> None:
        self._buffer = None


def rdm6300_frame(tag: bytes) -> bytes:
    """The bytes an RDM6300 sends for a 5-byte ``tag`` (used by simulators)."""
    if len(tag) != 5:
        raise ValueError("an RDM6300 tag is 5 bytes (version + 4)")
    x = 0
    for b in tag:
        x ^= b
    return bytes([STX]) + (tag.hex().upper() + f"{x:02X}").encode("ascii") + bytes([ETX])


# AIM symbology identifiers (ISO/IEC 15424): "]" + code character + modifier.
AIM_SYMBOLOGIES: dict[str, str] = {
    "A": "code39",
    "C": "code128",
    "E": "ean-upc",
    "F": "codabar",
    "G": "code93",
    "I": "itf",
    "L": "pdf417",
    "Q": "qr",
    "d": "datamatrix",
    "e": "gs1-databar",
    "z": "aztec",
}


@dataclass(frozen=True, slots=True)
class Barcode:
    code: str
    symbology: str | None


def ean_checksum_ok(digits: str) -> bool:
    """GS1 mod-10 check digit of an EAN-8, UPC-A, EAN-13 or GTIN-14."""
    if not digits.isascii() or not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        return False
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def parse_barcode_line(
    line: bytes,
    prefix: str = "",
    suffix: str = "",
    aim_id: bool = False,
    verify_ean: bool = True,
    max_length: int = 128,
) -> Barcode | None:
    """One scanned code from a scanner line, or ``None`` for noise.

    ``prefix``/``suffix`` are configured on the scanner and must be present (and
    are removed). With ``aim_id`` the line starts with an AIM identifier
    (``]E0`` …) that names the symbology. Control characters other than GS
    (``\\x1d``, the GS1 separator) mark the line as noise; GS at either end is
    dropped, and a code needs at least one printable, non-blank character. With ``verify_ean``
    a 8/12/13-digit code read as EAN/UPC (or with no symbology) must have a
    valid check digit.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if prefix:
        if not text.startswith(prefix):
            return None
        text = text[len(prefix) :]
    if suffix:
        if not text.endswith(suffix):
            return None
        text = text[: -len(suffix)]
    symbology: str | None = None
    if aim_id:
        if len(text) < 3 or text[0] != "]":
            return None
        symbology = AIM_SYMBOLOGIES.get(text[1], f"aim-{text[1:3]}")
        if not text[2].isalnum():
            return None
        text = text[3:]
    # GS separates GS1 fields: one at either end separates nothing (some scanners send FNC1 in first position as GS)
    text = text.strip(GS)
    if not text or len(text) > max_length or text != text.strip():
        return None
    if any((ord(c) < 0x20 and c != GS) or ord(c) == 0x7F for c in text):
        return None
    if not any(c.isprintable() and not c.isspace() for c in text):
        return None  # a code is something printed on a label: a line of separators or blanks is noise
    if verify_ean and symbology in (None, "ean-upc") and text.isascii() and text.isdigit() and len(text) in (8, 12, 13):
        if not ean_checksum_ok(text):
            return None
        if symbology is None:
            symbology = {8: "ean-8", 12: "upc-a", 13: "ean-13"}[len(text)]
    return Barcode(code=text, symbology=symbology)
