"""Serial drivers against simulated devices on pseudo-terminals (real bytes through real ttys)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.base import DeviceError, SerialRead
from drivers.serial.common import SerialDriver
from drivers.serial.lines import rdm6300_frame
from drivers.serial.pn532_reader import Pn532Options, Pn532Reader
from drivers.serial.readers import AsciiCardReader, AsciiReaderOptions, BarcodeOptions, BarcodeScanner
from tests.drivers.simulators import Pn532Simulator, PtyDevice

UID4 = bytes.fromhex("DEADBEEF")
UID7 = bytes.fromhex("04A1B2C3D4E580")


def collect(driver: SerialDriver, seconds: float, until: int | None = None) -> list[SerialRead]:
    """Read for ``seconds`` (or until ``until`` reads), checking that no read overruns its timeout."""
    reads: list[SerialRead] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and (until is None or len(reads) < until):
        started = time.monotonic()
        item = driver.read(0.2)
        assert time.monotonic() - started < 0.2 + 1.0, "read blocked past its timeout"
        if item is not None:
            reads.append(item)
    return reads


@pytest.fixture
def pn532_rig(tmp_path: Path) -> Iterator[tuple[PtyDevice, Pn532Simulator, Pn532Reader]]:
    device = PtyDevice(tmp_path / "serial" / "by-id" / "usb-NXP_PN532-if00-port0")
    options = Pn532Options(name="nfc", type="pn532", port=device.path, poll_interval_s=0.05, response_timeout_s=0.3)
    driver = Pn532Reader(options)
    with Pn532Simulator(device) as sim:
        yield device, sim, driver
    driver.close()
    device.unplug()


def test_pn532_handshake_and_tap(pn532_rig: tuple[PtyDevice, Pn532Simulator, Pn532Reader]) -> None:
    _, sim, driver = pn532_rig
    driver.open()
    assert sim.commands[:3] == [0x02, 0x14, 0x32]  # firmware, SAMConfiguration, RFConfiguration
    assert driver.firmware == "PN532 firmware 1.6"
    assert collect(driver, 0.5) == []  # polls answered "no card"
    assert sim.polls >= 3
    sim.card = UID4
    reads = collect(driver, 3.0, until=1)
    assert [(r.kind, r.value, r.source) for r in reads] == [("card", "DEADBEEF", "nfc")]
    assert reads[0].detail == {"protocol": "iso14443a", "atqa": "0004", "sak": "08"}


@pytest.mark.slow
def test_pn532_card_held_ten_seconds_is_one_tap(pn532_rig: tuple[PtyDevice, Pn532Simulator, Pn532Reader]) -> None:
    _, sim, driver = pn532_rig
    driver.open()
    sim.card = UID7
    reads = collect(driver, 10.0)
    assert sim.polls > 50  # the card was seen on every poll
    assert [r.value for r in reads] == ["04A1B2C3D4E580"]
    sim.card = None
    assert collect(driver, 0.5) == []
    sim.card = UID7  # taken away and presented again: a second tap
    assert [r.value for r in collect(driver, 3.0, until=1)] == ["04A1B2C3D4E580"]


@pytest.mark.parametrize("fault", ["garbage", "split", "bad_lcs", "bad_dcs", "error", "silent"])
def test_pn532_recovers_from_line_faults(pn532_rig: tuple[PtyDevice, Pn532Simulator, Pn532Reader], fault: str) -> None:
    _, sim, driver = pn532_rig
    driver.open()
    sim.faults.extend([fault, fault])
    sim.card = UID4
    reads = collect(driver, 5.0, until=1)
    assert [r.value for r in reads] == ["DEADBEEF"]
    assert collect(driver, 1.0) == []  # the second fault hits a poll while the card is held: still one tap
    assert not sim.faults
    if fault == "bad_dcs":
        assert sim.nacks == 2 and driver.nacks_sent == 2  # the driver asked again, the chip repeated
    if fault in ("bad_lcs", "silent"):
        assert sim.acks_from_host == 2  # each overdue poll was aborted with an ACK


def test_pn532_ten_byte_uid_and_card_swap(pn532_rig: tuple[PtyDevice, Pn532Simulator, Pn532Reader]) -> None:
    _, sim, driver = pn532_rig
    driver.open()
    uid10 = bytes(range(1, 11))
    sim.card = uid10
    assert [r.value for r in collect(driver, 3.0, until=1)] == ["0102030405060708090A"]
    sim.card = UID4  # swapped without a gap: a new card is a new tap
    assert [r.value for r in collect(driver, 3.0, until=1)] == ["DEADBEEF"]


def test_pn532_silent_chip_is_a_device_error(pn532_rig: tuple[PtyDevice, Pn532Simulator, Pn532Reader]) -> None:
    _, sim, driver = pn532_rig
    driver.open()
    sim.faults.extend(["silent"] * 10)
    with pytest.raises(DeviceError, match=r"pn532 nfc \(port .*usb-NXP_PN532-if00-port0\): no answer to 3 polls"):
        collect(driver, 5.0)
    driver.close()
    sim.faults.clear()
    driver.open()  # re-openable after close
    sim.card = UID4
    assert [r.value for r in collect(driver, 3.0, until=1)] == ["DEADBEEF"]


def test_pn532_no_chip_fails_open_naming_the_port(tmp_path: Path) -> None:
    device = PtyDevice(tmp_path / "ttyNOCHIP")  # a port with nothing answering
    try:
        driver = Pn532Reader(Pn532Options(name="nfc", type="pn532", port=device.path, handshake_timeout_s=0.3))
        with pytest.raises(DeviceError, match=r"no answer to GetFirmwareVersion.*HSU mode"):
            driver.open()
        driver.close()
    finally:
        device.unplug()


def test_exclusive_open(pn532_rig: tuple[PtyDevice, Pn532Simulator, Pn532Reader]) -> None:
    device, _, driver = pn532_rig
    driver.open()
    other = Pn532Reader(Pn532Options(name="nfc2", type="pn532", port=device.path))
    with pytest.raises(DeviceError, match=r"nfc2.*cannot open.*lock"):
        other.open()


def test_ascii_reader_with_noise_partial_lines_and_repeats(tmp_path: Path) -> None:
    device = PtyDevice(tmp_path / "by-id" / "usb-reader")
    driver = AsciiCardReader(
        AsciiReaderOptions(name="desk", type="ascii-reader", port=device.path, format="decimal", repeat_window_s=0.5)
    )
    try:
        driver.open()
        device.send(b"\xff\xfe\x00garbage\r\n")  # line noise at power-up
        device.send(b"37359")  # a line split across two writes
        time.sleep(0.05)
        device.send(b"28559\r\n")
        device.send(b"3735928559\r\n3735928559\n")  # the reader repeats while the card is held
        device.send(b"12345678901234567890\r\n")  # too big for 4 bytes
        reads = collect(driver, 1.0)
        assert [r.value for r in reads] == ["DEADBEEF"]
        assert driver.rejected == 2
        time.sleep(0.6)
        device.send(b"0016909060\r")  # CR only, after the repeat window: a new tap
        assert [r.value for r in collect(driver, 1.0, until=1)] == ["01020304"]
    finally:
        driver.close()
        device.unplug()


def test_rdm6300_frames_on_a_pty(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Also: with DEBUG logging on, a rejected frame's bytes (which hold a card UID) appear in no log line."""
    caplog.set_level(logging.DEBUG)
    device = PtyDevice(tmp_path / "rdm")
    driver = AsciiCardReader(AsciiReaderOptions(name="rfid", type="ascii-reader", port=device.path, format="rdm6300"))
    try:
        driver.open()
        good = rdm6300_frame(bytes.fromhex("0C00A1B2C3"))
        corrupt = bytearray(good)
        corrupt[5] = ord("7")
        device.send(b"\x00\x00" + bytes(corrupt) + good[:7])
        time.sleep(0.05)
        device.send(good[7:] + good + good)
        reads = collect(driver, 1.0)
        assert [r.value for r in reads] == ["0C00A1B2C3"]
        assert driver.rejected == 1
        assert any("ignored" in r.getMessage() for r in caplog.records)
        logged = caplog.text.upper()
        assert "A1B2C3" not in logged and "A1B2" not in logged and "0C00" not in logged
    finally:
        driver.close()
        device.unplug()


def test_barcode_scanner_prefix_suffix_aim(tmp_path: Path) -> None:
    device = PtyDevice(tmp_path / "scanner")
    driver = BarcodeScanner(
        BarcodeOptions(name="till", type="barcode", port=device.path, prefix="<", suffix=">", aim_id=True)
    )
    try:
        driver.open()
        device.send(b"<]E04006381333931>\r\n")
        device.send(b"<]E04006381333932>\r\n")  # bad EAN check digit: a misread
        device.send(b"\x1b[2J noise\r\n<]C1ABC-123")
        time.sleep(0.05)
        device.send(b">\r\n<]Q1https://example.com/p?id=7>\n")
        reads = collect(driver, 1.0)
        assert [(r.value, r.symbology, r.kind) for r in reads] == [
            ("4006381333931", "ean-upc", "barcode"),
            ("ABC-123", "code128", "barcode"),
            ("https://example.com/p?id=7", "qr", "barcode"),
        ]
        assert driver.rejected == 2
    finally:
        driver.close()
        device.unplug()
