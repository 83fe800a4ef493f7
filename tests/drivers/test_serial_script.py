"""Byte scripts: the format's errors, and replaying serial devices from scripts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.base import DeviceError, EndOfStream, SerialRead
from drivers.registry import create_driver, driver_class
from drivers.serial.common import SerialDriver
from drivers.serial.lines import rdm6300_frame
from drivers.serial.pn532_reader import Pn532Options
from drivers.serial.readers import BarcodeOptions
from drivers.serial.script import ScriptError, Send, Wait, parse_script

SCRIPTS = Path(__file__).parent / "scripts"


def drain(driver: SerialDriver) -> list[SerialRead]:
    reads: list[SerialRead] = []
    with driver:
        while True:
            try:
                item = driver.read(0.5)
            except EndOfStream:
                return reads
            if item is not None:
                reads.append(item)


def test_script_steps() -> None:
    steps = parse_script('hex 00 FF\nhex 00FF01  # compact\ntext "a\\r\\n\\x00é"\nwait 0.25\npn532-ack\n')
    assert steps == [
        Send(b"\x00\xff", 1),
        Send(b"\x00\xff\x01", 2),
        Send(b"a\r\n\x00\xc3\xa9", 3),
        Wait(0.25, 4),
        Send(bytes.fromhex("0000FF00FF00"), 5),
    ]
    (frame,) = parse_script("pn532-frame D5 03 32 01 06 07")
    assert isinstance(frame, Send) and frame.data == bytes.fromhex("0000FF06FAD50332010607E800")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hex 00 GG", "x.script:1: hex: 'GG' is not a hex byte"),
        ("hex 0", "x.script:1: hex: '0' is not a hex byte"),
        ('text "abc', "x.script:1: text needs one double-quoted string"),
        ('text "a\\q"', "x.script:1: unknown escape \\\\q"),
        ("hex 01\nwait soon", "x.script:2: wait needs a number of seconds"),
        ("hex 01\nwait -1", "x.script:2: wait must be between 0 and 3600"),
        ("\n\nbeep 01", "x.script:3: unknown step 'beep'"),
        ("# only a comment\nwait 1", "x.script: the script sends no bytes"),
    ],
)
def test_script_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        parse_script(text, "x.script")


def test_pn532_replay_gives_one_tap_per_presence() -> None:
    driver = create_driver(
        "serial", Pn532Options(name="nfc", type="pn532", script=SCRIPTS / "pn532_session.script", realtime=False)
    )
    assert driver.is_replay and not driver.realtime
    reads = drain(driver)  # type: ignore[arg-type]
    assert [r.value for r in reads] == ["DEADBEEF", "04A1B2C3D4E580"]
    assert reads[1].detail["sak"] == "00"
    assert driver.firmware == "PN532 firmware 1.6"  # type: ignore[attr-defined]


def test_barcode_replay_realtime_paces_the_waits() -> None:
    options = BarcodeOptions(name="till", type="barcode", script=SCRIPTS / "scanner.script", realtime=True)
    driver = driver_class("serial", "barcode")(options)
    started = time.monotonic()
    reads = drain(driver)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.5
    assert [r.value for r in reads] == ["4006381333931", "4006381333931", "ABC-123"]
    assert [r.symbology for r in reads] == ["ean-13", "ean-13", None]


def test_bad_script_fails_open_naming_file_and_line(tmp_path: Path) -> None:
    script = tmp_path / "bad.script"
    script.write_text("hex 01\nhex 0x02\n")
    driver = driver_class("serial", "barcode")(BarcodeOptions(name="till", type="barcode", script=script))
    with pytest.raises(DeviceError, match=r"serial till: .*bad.script:2: hex: '0x02' is not hex bytes"):
        driver.open()


def test_options_need_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one of port"):
        BarcodeOptions(name="till", type="barcode")
    with pytest.raises(ValidationError, match="exactly one of port"):
        BarcodeOptions(name="till", type="barcode", port="/dev/ttyUSB0", script=SCRIPTS / "scanner.script")
    with pytest.raises(ValidationError, match="file not found"):
        BarcodeOptions(name="till", type="barcode", script=tmp_path / "missing.script")
    with pytest.raises(ValidationError, match="absolute device path"):
        BarcodeOptions(name="till", type="barcode", port="ttyUSB0")
    with pytest.raises(ValidationError, match="baudrate must be one of"):
        Pn532Options(name="nfc", type="pn532", port="/dev/ttyS0", baudrate=12345)
    assert Pn532Options(name="nfc", type="pn532", port="/dev/serial/by-id/x").baudrate == 115200


def _replay(tmp_path: Path, options: dict[str, Any], script: str) -> list[SerialRead]:
    path = tmp_path / f"{options['type']}-{len(list(tmp_path.iterdir()))}.script"
    path.write_text(script)
    driver = create_driver("serial", driver_class("serial", options["type"]).Options(script=path, **options))
    return drain(driver)  # type: ignore[arg-type]


CARD = "pn532-ack\npn532-frame D5 4B 01 01 00 04 08 04 DE AD BE EF\nwait 0.2\n"
NO_CARD = "pn532-ack\npn532-frame D5 4B 00\nwait 0.2\n"


def test_pn532_absent_polls_decide_when_a_card_was_taken_away(tmp_path: Path) -> None:
    """``absent_polls``: a card missing from fewer polls than this is the same presence (one tap); missing from
    this many it was taken away, and seeing it again is a new tap."""
    script = CARD + NO_CARD * 2 + CARD + NO_CARD * 3 + CARD
    options = {"name": "nfc", "type": "pn532", "realtime": False}
    taps = {n: [r.value for r in _replay(tmp_path, {**options, "absent_polls": n}, script)] for n in (2, 3, 4)}
    assert taps == {2: ["DEADBEEF"] * 3, 3: ["DEADBEEF"] * 2, 4: ["DEADBEEF"]}


def test_ascii_reader_settings_decode_the_lines(tmp_path: Path) -> None:
    """``format``, ``uid_bytes``, ``reverse`` and ``prefix`` decide what a reader's line means; ``repeat_window_s``
    how long the same card counts as still held."""
    base = {"name": "desk", "type": "ascii-reader", "realtime": False}

    def values(script: str, **settings: Any) -> list[str]:
        return [r.value for r in _replay(tmp_path, {**base, **settings}, script)]

    decimal = 'text "3735928559\\r\\n"\n'
    assert values(decimal, format="decimal") == ["DEADBEEF"]
    assert values(decimal, format="hex") == []  # ten hex digits are no 4/7/10-byte UID
    assert values(decimal, format="decimal", reverse=True) == ["EFBEADDE"]
    seven = f'text "{int("04A1B2C3D4E580", 16)}\\r\\n"\n'
    assert values(seven, format="decimal") == []  # too big for the default 4 bytes
    assert values(seven, format="decimal", uid_bytes=7) == ["04A1B2C3D4E580"]
    prefixed = 'text "UID:DEADBEEF\\r\\n"\n'
    assert values(prefixed, format="hex") == []
    assert values(prefixed, format="hex", prefix="UID:") == ["DEADBEEF"]
    frame = rdm6300_frame(bytes.fromhex("0C00A1B2C3"))
    rdm = f"hex {frame.hex()}\n"
    assert values(rdm, format="rdm6300") == ["0C00A1B2C3"]
    assert values(rdm, format="hex") == []
    held = 'text "DEADBEEF\\r\\n"\nwait 0.6\ntext "DEADBEEF\\r\\n"\nwait 0.6\ntext "DEADBEEF\\r\\n"\n'
    assert values(held, format="hex", repeat_window_s=1.0) == ["DEADBEEF"]  # each sighting extends the hold
    assert values(held, format="hex", repeat_window_s=0.5) == ["DEADBEEF"] * 3


def test_barcode_settings_filter_the_lines(tmp_path: Path) -> None:
    """``aim_id``, ``verify_ean``, ``max_length``, ``prefix`` and ``suffix`` decide which lines are codes."""
    base = {"name": "till", "type": "barcode", "realtime": False}

    def codes(script: str, **settings: Any) -> list[tuple[str, str | None]]:
        return [(r.value, r.symbology) for r in _replay(tmp_path, {**base, **settings}, script)]

    aim = 'text "]E04006381333931\\r\\n"\n'
    assert codes(aim, aim_id=True) == [("4006381333931", "ean-upc")]
    assert codes(aim, aim_id=False) == [("]E04006381333931", None)]
    misread = 'text "4006381333932\\r\\n"\n'
    assert codes(misread, verify_ean=True) == []
    assert codes(misread, verify_ean=False) == [("4006381333932", None)]
    long = 'text "ABCDEFGHIJKLMNOPQRST\\r\\n"\n'
    assert codes(long, max_length=20) == [("ABCDEFGHIJKLMNOPQRST", None)]
    assert codes(long, max_length=19) == []
    framed = 'text "<ABC-123>\\r\\n"\ntext "ABC-456\\r\\n"\n'
    assert codes(framed) == [("<ABC-123>", None), ("ABC-456", None)]
    assert codes(framed, prefix="<", suffix=">") == [("ABC-123", None)]  # prefix and suffix are required
