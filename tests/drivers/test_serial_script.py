"""Byte scripts: the format's errors, and replaying serial devices from scripts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.base import DeviceError, EndOfStream, SerialRead
from drivers.registry import create_driver, driver_class
from drivers.serial.common import SerialDriver
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
