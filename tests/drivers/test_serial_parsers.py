"""Pure serial parsers: PN532 framing, ASCII/RDM6300 card lines, barcodes; fuzzed with hypothesis."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial import pn532
from drivers.serial.lines import (
    LineSplitter,
    Rdm6300Splitter,
    ean_checksum_ok,
    parse_barcode_line,
    parse_card_line,
    parse_rdm6300,
    rdm6300_frame,
)

FUZZ = settings(max_examples=1000, deadline=None)  # PN532: 3 x 1000 inputs per run
FUZZ_LINES = settings(max_examples=600, deadline=None)
uids = st.sampled_from([4, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
no_ff = st.binary(max_size=40).map(lambda b: b.replace(b"\xff", b"\x01"))  # noise that cannot hold a start code


def taps(stream: bytes) -> list[str]:
    """Every UID a stream would produce: what the driver sees after framing and checksums."""
    frames, _ = pn532.parse_frames(stream)
    out: list[str] = []
    for f in frames:
        if isinstance(f, pn532.Information) and f.tfi == pn532.TFI_CHIP and f.command == 0x4B:
            with contextlib.suppress(pn532.ResponseError):
                out += [t.uid_hex for t in pn532.parse_target_list(f.data)]
    return out


def test_frames_from_the_datasheet() -> None:
    assert pn532.command_frame(pn532.GET_FIRMWARE_VERSION) == bytes.fromhex("0000FF02FED4022A00")
    assert pn532.in_list_passive_target(1) == bytes.fromhex("0000FF04FCD44A0100E100")
    frames, used = pn532.parse_frames(bytes.fromhex("0000FF00FF00 0000FF06FAD50332010607E800".replace(" ", "")))
    assert frames == [pn532.Ack(), pn532.Information(0xD5, bytes.fromhex("0332010607"))]
    assert used == 18  # the final 00 postamble is kept: it might begin the next start code
    frames, _ = pn532.parse_frames(bytes.fromhex("0000FF01FF7F8100"))
    assert frames == [pn532.ErrorFrame()]
    frames, _ = pn532.parse_frames(pn532.NACK_FRAME)
    assert frames == [pn532.Nack()]


def test_extended_frame() -> None:
    body = bytes([0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 1, 2, 3, 4])
    ext = bytes([0, 0, 0xFF, 0xFF, 0xFF, 0x00, len(body), (-len(body)) & 0xFF, *body, (-sum(body)) & 0xFF, 0])
    assert taps(ext) == ["01020304"]


def test_target_list_with_ats_and_errors() -> None:
    data = bytes([0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07, *range(7), 0x05, 0x78, 0x80, 0x70, 0x02])
    (target,) = pn532.parse_target_list(data)
    assert (target.uid_hex, target.sak, target.atqa) == ("00010203040506", 0x20, 0x0344)
    assert pn532.parse_target_list(bytes([0x4B, 0x00])) == []
    for bad, why in [
        (bytes([0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x05, 1, 2, 3, 4, 5]), "UID length 5"),
        (bytes([0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 1, 2]), "truncated"),
        (bytes([0x4B, 0x03]), "NbTg 3"),
        (bytes([0x4B, 0x00, 0x99]), "trailing"),
    ]:
        with pytest.raises(pn532.ResponseError, match=why):
            pn532.parse_target_list(bad)


@FUZZ
@given(st.binary(max_size=300))
def test_parse_frames_never_raises_and_consumes_within_bounds(data: bytes) -> None:
    _frames, used = pn532.parse_frames(data)
    assert 0 <= used <= len(data)
    parser = pn532.FrameParser()
    parser.feed(data)
    parser.resync()
    assert parser.pending <= len(data)
    taps(data)


@FUZZ
@given(no_ff, uids, no_ff, st.lists(st.integers(0, 80), max_size=6))
def test_garbage_and_splits_never_lose_or_invent_a_tap(
    before: bytes, uid: bytes, after: bytes, cuts: list[int]
) -> None:
    stream = before + pn532.target_list_response([uid]) + after
    assert taps(stream) == [uid.hex().upper()]
    parser = pn532.FrameParser()
    frames: list[pn532.Pn532Frame] = []
    last = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        frames += parser.feed(stream[last:cut])
        last = cut
    assert frames == pn532.parse_frames(stream)[0]


@FUZZ
@given(uids, st.data())
def test_any_single_byte_corruption_gives_no_false_tap(uid: bytes, data: st.DataObject) -> None:
    frame = bytearray(pn532.target_list_response([uid]))
    # corrupt a byte of LEN, LCS, the body or DCS (preamble/postamble carry no meaning)
    index = data.draw(st.integers(3, len(frame) - 2))
    frame[index] ^= data.draw(st.integers(1, 255))
    assert taps(bytes(frame)) == []  # LCS guards LEN, DCS guards every body byte


@FUZZ_LINES
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=5))
def test_line_splitter_is_split_invariant(data: bytes, cuts: list[int]) -> None:
    whole = LineSplitter(max_line=64).feed(data)
    splitter = LineSplitter(max_line=64)
    parts: list[bytes] = []
    last = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        parts += splitter.feed(data[last:cut])
        last = cut
    assert parts == whole
    assert all(b"\r" not in line and b"\n" not in line and 0 < len(line) <= 64 for line in whole)


@FUZZ_LINES
@given(st.binary(max_size=40), st.sampled_from(["hex", "decimal"]), st.sampled_from([4, 7, 10]), st.booleans())
def test_card_line_parser_never_raises(line: bytes, fmt: str, size: int, reverse: bool) -> None:
    uid = parse_card_line(line, fmt, size, reverse)  # type: ignore[arg-type]
    if uid is not None:
        assert len(uid) in (8, 14, 20) and uid == uid.upper()
        assert bytes.fromhex(uid)


@FUZZ_LINES
@given(st.binary(max_size=64))
def test_rdm6300_parser_never_raises_and_only_accepts_checked_frames(data: bytes) -> None:
    for body in Rdm6300Splitter().feed(data):
        tag = parse_rdm6300(body)
        if tag is not None:
            assert rdm6300_frame(bytes.fromhex(tag))[1:-1].upper() == body.upper()


@FUZZ_LINES
@given(st.binary(max_size=80), st.booleans(), st.text(max_size=3), st.text(max_size=3))
def test_barcode_parser_never_raises(line: bytes, aim: bool, prefix: str, suffix: str) -> None:
    code = parse_barcode_line(line, prefix.replace("\r", "").replace("\n", ""), suffix, aim)
    if code is not None:
        assert code.code and code.code == code.code.strip()
        assert all(ord(c) >= 0x20 or c == "\x1d" for c in code.code)
        assert any(c.isprintable() and not c.isspace() for c in code.code)


def test_a_line_of_group_separators_is_no_barcode() -> None:
    """A line holding only GS (0x1D) once became the barcode '\\x1d' (found by the fuzz test on a fresh clone)."""
    for line in (b"\x1d", b"\x1d\x1d\x1d", b"\x1d \x1d", b"]d2\x1d"):
        assert parse_barcode_line(line, aim_id=line.startswith(b"]")) is None, line
    assert parse_barcode_line(b"\x1d\x1d", prefix="X", suffix="") is None
    assert parse_barcode_line(b"\xc2\xa0") is None  # a no-break space is blank too
    # GS inside a GS1 code is kept; at the ends it separates nothing and goes
    gs1 = parse_barcode_line(b"]d2\x1d0104006381333931\x1d10ABC\x1d", aim_id=True)
    assert gs1 is not None and gs1.code == "0104006381333931\x1d10ABC"


def test_card_line_formats() -> None:
    assert parse_card_line(b"DE:AD:BE:EF", "hex") == "DEADBEEF"
    assert parse_card_line(b"04 a1 b2 c3 d4 e5 80", "hex") == "04A1B2C3D4E580"
    assert parse_card_line(b"DEADBE", "hex") is None  # 3 bytes is no UID
    assert parse_card_line(b"3735928559", "decimal") == "DEADBEEF"
    assert parse_card_line(b"3735928559", "decimal", reverse=True) == "EFBEADDE"
    assert parse_card_line(b"4294967296", "decimal") is None  # does not fit 4 bytes
    assert parse_card_line(b"UID=DEADBEEF", "hex", strip_prefix="UID=") == "DEADBEEF"
    assert parse_card_line("３７".encode(), "decimal") is None  # full-width digits are not ASCII


def test_barcodes() -> None:
    assert parse_barcode_line(b"4006381333931") is not None
    assert parse_barcode_line(b"4006381333931").symbology == "ean-13"  # type: ignore[union-attr]
    assert parse_barcode_line(b"4006381333932") is None
    assert parse_barcode_line(b"4006381333932", verify_ean=False) is not None
    assert parse_barcode_line(b"]d2\x1d0104006381333931", aim_id=True).symbology == "datamatrix"  # type: ignore[union-attr]
    assert parse_barcode_line(b"ABC\x07") is None
    assert parse_barcode_line(b" ABC") is None
    assert ean_checksum_ok("96385074") and ean_checksum_ok("036000291452") and not ean_checksum_ok("036000291453")
