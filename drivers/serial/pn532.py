"""NXP PN532 host protocol over HSU (UART): framing, checksums and responses as pure functions.

Frames (PN532 User Manual §6.2): preamble ``00``, start code ``00 FF``, ``LEN``,
``LCS`` (LEN + LCS ≡ 0), ``TFI`` (``D4`` host → chip, ``D5`` chip → host),
data, ``DCS`` (TFI + Σdata + DCS ≡ 0), postamble ``00``. ``00 00 FF 00 FF 00`` is
an ACK, ``00 00 FF FF 00 00`` a NACK, ``00 00 FF FF FF LENM LENL LCS …`` an
extended frame, and a frame whose only byte is ``7F`` a syntax error.

The parser is a stream parser: it never raises on bad input, reports bad data
checksums so the host can NACK, and resynchronises by rescanning from one byte
after a false start, so a garbage prefix never swallows the real frame behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

ACK_FRAME = b"\x00\x00\xff\x00\xff\x00"
NACK_FRAME = b"\x00\x00\xff\xff\x00\x00"
WAKEUP = b"\x55\x55" + b"\x00" * 14
"""HSU wake-up: the chip leaves power-down on 0x55 and needs a long preamble before the first command."""

TFI_HOST = 0xD4
TFI_CHIP = 0xD5
GET_FIRMWARE_VERSION = 0x02
SAM_CONFIGURATION = 0x14
RF_CONFIGURATION = 0x32
IN_LIST_PASSIVE_TARGET = 0x4A
BRTY_106A = 0x00  # 106 kbps type A (ISO/IEC 14443 type A)
MAX_BODY = 264  # TFI + data: the PN532 has a 265-byte frame buffer
UID_LENGTHS = (4, 7, 10)


@dataclass(frozen=True, slots=True)
class Ack:
    pass


@dataclass(frozen=True, slots=True)
class Nack:
    pass


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """The chip's application-level error frame (``7F``): it did not understand the command."""


@dataclass(frozen=True, slots=True)
class BadChecksum:
    """A frame whose LEN was consistent but whose data checksum was wrong (ask again with NACK)."""


@dataclass(frozen=True, slots=True)
class Information:
    """A well-formed information frame: ``tfi`` and the bytes after it."""

    tfi: int
    data: bytes

    @property
    def command(self) -> int | None:
        return self.data[0] if self.data else None


Pn532Frame = Ack | Nack | ErrorFrame | BadChecksum | Information


@dataclass(frozen=True, slots=True)
class Target:
    """One ISO 14443 type A target from an InListPassiveTarget response."""

    number: int
    atqa: int
    sak: int
    uid: bytes

    @property
    def uid_hex(self) -> str:
        return self.uid.hex().upper()


def information_frame(body: bytes) -> bytes:
    """Frame ``body`` (TFI first) as a normal information frame with LEN, LCS and DCS."""
    if not 1 <= len(body) <= 255:
        raise ValueError(f"PN532 frame body must be 1..255 bytes (got {len(body)})")
    length = len(body)
    return bytes([0x00, 0x00, 0xFF, length, (-length) & 0xFF, *body, (-sum(body)) & 0xFF, 0x00])


def command_frame(command: int, params: bytes = b"") -> bytes:
    """A host-to-chip command frame (TFI ``D4``)."""
    return information_frame(bytes([TFI_HOST, command, *params]))


def sam_configuration() -> bytes:
    """SAMConfiguration: normal mode, 1 s virtual-card timeout unused, IRQ pin used."""
    return command_frame(SAM_CONFIGURATION, b"\x01\x14\x01")


def max_retries(passive_activation: int) -> bytes:
    """RFConfiguration item 5 (MaxRetries): bound InListPassiveTarget so it answers NbTg=0 without a card.

    The chip's default (0xFF) retries forever, which would leave the host unable to tell
    "no card" from "chip gone".
    """
    return command_frame(RF_CONFIGURATION, bytes([0x05, 0xFF, 0x01, passive_activation & 0xFF]))


def in_list_passive_target(max_targets: int = 1) -> bytes:
    """InListPassiveTarget for ``max_targets`` type A targets at 106 kbps."""
    return command_frame(IN_LIST_PASSIVE_TARGET, bytes([max_targets, BRTY_106A]))


def parse_frames(buffer: bytes) -> tuple[list[Pn532Frame], int]:
    """Parse every complete frame in ``buffer``; return them and how many bytes were consumed.

    Bytes not consumed are an incomplete frame (or a lone trailing ``00`` that may
    begin a start code) and must be kept for the next call. Never raises.
    """
    frames: list[Pn532Frame] = []
    i = 0
    n = len(buffer)
    while True:
        j = buffer.find(b"\x00\xff", i)
        if j < 0:
            return frames, (n - 1 if n > i and buffer[-1] == 0 else n)
        p = j + 2
        if n < p + 2:
            return frames, j
        length, lcs = buffer[p], buffer[p + 1]
        if length == 0x00 and lcs == 0xFF:
            frames.append(Ack())
            i = p + 2
            continue
        if length == 0xFF and lcs == 0x00:
            frames.append(Nack())
            i = p + 2
            continue
        if length == 0xFF and lcs == 0xFF:
            if n < p + 5:
                return frames, j
            lenm, lenl, elcs = buffer[p + 2], buffer[p + 3], buffer[p + 4]
            if (lenm + lenl + elcs) & 0xFF:
                i = j + 1
                continue
            length = (lenm << 8) | lenl
            start = p + 5
        else:
            if (length + lcs) & 0xFF:
                i = j + 1
                continue
            start = p + 2
        if not 1 <= length <= MAX_BODY:
            i = j + 1
            continue
        if n < start + length + 1:
            return frames, j
        body = buffer[start : start + length]
        if (sum(body) + buffer[start + length]) & 0xFF:
            frames.append(BadChecksum())
            i = j + 1
            continue
        if length == 1 and body[0] == 0x7F:
            frames.append(ErrorFrame())
        else:
            frames.append(Information(body[0], bytes(body[1:])))
        i = start + length + 1


class FrameParser:
    """Incremental wrapper around :func:`parse_frames` that keeps the unconsumed tail."""

    def __init__(self, max_buffer: int = 1024) -> None:
        self._buffer = b""
        self._max_buffer = max_buffer

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Pn532Frame]:
        self._buffer += data
        frames, consumed = parse_frames(self._buffer)
        self._buffer = self._buffer[consumed:]
        if len(self._buffer) > self._max_buffer:
            self._buffer = self._buffer[-self._max_buffer :]
        return frames

    def resync(self) -> list[Pn532Frame]:
        """Give up on the frame the buffer starts with (a false start that never completed)."""
        if not self._buffer:
            return []
        self._buffer = self._buffer[1:]
        return self.feed(b"")

    def clear(self) -> None:
        self._buffer = b""


class ResponseError(ValueError):
    """A checksummed response whose contents are not a valid answer (counted, never a tap)."""


def parse_target_list(data: bytes) -> list[Target]:
    """Decode the data of an InListPassiveTarget response (``4B NbTg …``) for 106 kbps type A.

    Each target is ``Tg ATQA(2) SAK UIDlen UID…``, followed by ``ATSlen ATS…`` when
    the SAK says the card speaks ISO/IEC 14443-4. Raises :class:`ResponseError`.
    """
    if len(data) < 2 or data[0] != IN_LIST_PASSIVE_TARGET + 1:
        raise ResponseError(f"not an InListPassiveTarget response: {data[:2].hex()}")
    count = data[1]
    if count > 2:
        raise ResponseError(f"NbTg {count} > 2")
    targets: list[Target] = []
    i = 2
    for _ in range(count):
        if len(data) < i + 5:
            raise ResponseError("target record truncated")
        number, atqa, sak, uid_len = data[i], (data[i + 1] << 8) | data[i + 2], data[i + 3], data[i + 4]
        if uid_len not in UID_LENGTHS:
            raise ResponseError(f"UID length {uid_len} is not 4, 7 or 10")
        uid = data[i + 5 : i + 5 + uid_len]
        if len(uid) != uid_len:
            raise ResponseError("UID truncated")
        i += 5 + uid_len
        if sak & 0x20 and i < len(data):
            ats_len = data[i]
            if ats_len < 1 or len(data) < i + ats_len:
                raise ResponseError("ATS truncated")
            i += ats_len
        targets.append(Target(number=number, atqa=atqa, sak=sak, uid=bytes(uid)))
    if i != len(data):
        raise ResponseError(f"{len(data) - i} unexpected trailing bytes")
    return targets


def target_list_response(uids: list[bytes], sak: int = 0x08, atqa: int = 0x0004) -> bytes:
    """The chip's answer frame to InListPassiveTarget carrying ``uids`` (used by simulators and scripts)."""
    body = bytearray([TFI_CHIP, IN_LIST_PASSIVE_TARGET + 1, len(uids)])
    for n, uid in enumerate(uids, start=1):
        body += bytes([n, atqa >> 8, atqa & 0xFF, sak, len(uid)]) + uid
    return information_frame(bytes(body))
