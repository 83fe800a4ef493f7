"""Serial drivers against simulated devices on pseudo-terminals (real bytes through real ttys)."""

from __future__ import annotations

import logging
import os
import termios
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


# --- settings of the serial entries ---------------------------------------------------------------

CMSPAR = 0o10000000000  # "stick" (mark/space) parity; Linux termios, not exported by Python's module


def line_flags(fd: int) -> dict[str, object]:
    """What the kernel holds for the tty: speed, stop bits, parity, flow control, character size."""
    _, _, cflag, _, ispeed, ospeed, _ = termios.tcgetattr(fd)
    return {
        "speed": (ispeed, ospeed),
        "size": {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}[cflag & termios.CSIZE],
        "parenb": bool(cflag & termios.PARENB),
        "parodd": bool(cflag & termios.PARODD),
        "stick": bool(cflag & CMSPAR),
        "cstopb": bool(cflag & termios.CSTOPB),
        "crtscts": bool(cflag & termios.CRTSCTS),
    }


@pytest.mark.parametrize(
    ("settings", "speed", "parodd", "stick", "cstopb", "crtscts"),
    [
        ({"baudrate": 9600, "parity": "N", "stopbits": 1, "rtscts": False}, termios.B9600, False, False, False, False),
        ({"baudrate": 115200, "parity": "O", "stopbits": 2, "rtscts": True}, termios.B115200, True, False, True, True),
        ({"baudrate": 4800, "parity": "M", "stopbits": 1.5, "rtscts": False}, termios.B4800, True, True, True, False),
        ({"baudrate": 57600, "parity": "S", "stopbits": 1, "rtscts": False}, termios.B57600, False, True, False, False),
    ],
)
def test_line_settings_reach_the_tty(
    tmp_path: Path, settings: dict[str, object], speed: int, parodd: bool, stick: bool, cstopb: bool, crtscts: bool
) -> None:
    """baudrate, parity, stopbits and rtscts are what the kernel's tty holds once the driver opened the port.

    A pseudo-terminal has no UART: Linux keeps it at 8 data bits and clears the parity-enable bit (CS8, no
    PARENB) whatever is asked, so ``bytesize`` and the presence of parity show only on a real UART
    (test_bytesize_and_parity_on_a_real_uart); the parity kind (odd, mark, space) does show here."""
    device = PtyDevice(tmp_path / "by-id" / "usb-reader")
    driver = AsciiCardReader(AsciiReaderOptions(name="desk", type="ascii-reader", port=device.path, **settings))  # type: ignore[arg-type]
    try:
        before = line_flags(device.master)
        driver.open()
        flags = line_flags(device.master)
        expected = {"speed": (speed, speed), "parodd": parodd, "stick": stick, "cstopb": cstopb, "crtscts": crtscts}
        assert {k: flags[k] for k in expected} == expected, flags
        assert before["speed"] != flags["speed"] or settings["baudrate"] == 9600
    finally:
        driver.close()
        device.unplug()


@pytest.mark.hardware
def test_bytesize_and_parity_on_a_real_uart() -> None:
    """On a real UART (named by STORE_AGENT_TEST_UART, e.g. a USB adapter nobody else uses) the data bits and
    parity of the entry are what the kernel programs; a pseudo-terminal cannot show them."""
    port = os.environ.get("STORE_AGENT_TEST_UART")
    if not port:
        pytest.skip("set STORE_AGENT_TEST_UART to a serial port that may be reconfigured (e.g. /dev/ttyUSB0)")
    for bytesize, parity in ((7, "E"), (8, "N")):
        driver = BarcodeScanner(
            BarcodeOptions(name="till", type="barcode", port=port, baudrate=9600, bytesize=bytesize, parity=parity)  # type: ignore[arg-type]
        )
        driver.open()
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            flags = line_flags(fd)
            assert flags["size"] == bytesize and flags["parenb"] == (parity != "N"), flags
        finally:
            os.close(fd)
            driver.close()


def test_write_timeout_bounds_a_write_nobody_takes(tmp_path: Path) -> None:
    """``write_timeout_s``: when the far end stops taking bytes, a write gives up after that long and the port
    counts as gone (DeviceError, so the runtime reopens it) instead of blocking the driver's thread."""
    elapsed: dict[float, float] = {}
    for timeout in (0.3, 1.5):
        device = PtyDevice(tmp_path / f"nfc-{timeout}")
        driver = Pn532Reader(Pn532Options(name="nfc", type="pn532", port=device.path, write_timeout_s=timeout))
        try:
            with Pn532Simulator(device):
                driver.open()  # the simulated chip answers the handshake, then stops reading
            started = time.monotonic()
            with pytest.raises(DeviceError, match=r"serial nfc .*write failed"):
                for _ in range(1000):  # the pty's buffer fills and stays full
                    driver.transport.write(b"\x55" * 65536)
            elapsed[timeout] = time.monotonic() - started
        finally:
            driver.close()
            device.unplug()
    assert 0.25 <= elapsed[0.3] < 1.0, elapsed
    assert 1.4 <= elapsed[1.5] < 3.0, elapsed


def _pn532(device: PtyDevice, **settings: float) -> Pn532Reader:
    return Pn532Reader(Pn532Options(name="nfc", type="pn532", port=device.path, **settings))  # type: ignore[arg-type]


def test_pn532_poll_interval_and_passive_retries_reach_the_chip(tmp_path: Path) -> None:
    """``poll_interval_s`` spaces the InListPassiveTarget polls; ``passive_retries`` is the MxRtyPassiveActivation
    byte of the RFConfiguration command the chip receives while opening."""
    rates: dict[float, float] = {}
    for interval, retries in ((0.05, 2), (0.3, 7)):
        device = PtyDevice(tmp_path / f"nfc-{interval}")
        driver = _pn532(device, poll_interval_s=interval, passive_retries=retries)
        try:
            with Pn532Simulator(device) as sim:
                driver.open()
                rf = [params for _, command, params in sim.frames if command == 0x32]
                assert rf == [bytes([0x05, 0xFF, 0x01, retries])]
                collect(driver, 1.5)
                polls = [t for t, command, _ in sim.frames if command == 0x4A]
                rates[interval] = (len(polls) - 1) / (polls[-1] - polls[0])
        finally:
            driver.close()
            device.unplug()
    assert rates[0.05] > 10 and 2.0 < rates[0.3] < 4.0, rates


def test_pn532_response_timeout_and_max_missed_responses(tmp_path: Path) -> None:
    """``response_timeout_s``: a poll the chip leaves unanswered is aborted (host ACK) that long after it was sent;
    ``max_missed_responses`` such polls in a row make the reader count as gone."""
    for timeout, missed in ((0.2, 2), (0.6, 4)):
        device = PtyDevice(tmp_path / f"nfc-{timeout}")
        driver = _pn532(device, poll_interval_s=0.05, response_timeout_s=timeout, max_missed_responses=missed)
        try:
            with Pn532Simulator(device) as sim:
                driver.open()
                sim.faults.extend(["silent"] * 10)
                with pytest.raises(DeviceError, match=rf"no answer to {missed} polls in a row"):
                    collect(driver, 10.0)
                polls = [t for t, command, _ in sim.frames if command == 0x4A]
                gaps = [ack - max(t for t in polls if t < ack) for ack in sim.ack_times]
        finally:
            driver.close()
            device.unplug()
        assert len(polls) == missed and len(gaps) == missed - 1, (polls, sim.ack_times)
        assert all(timeout - 0.02 <= gap <= timeout + 0.25 for gap in gaps), (timeout, gaps)


def test_pn532_handshake_timeout_bounds_opening_a_silent_port(tmp_path: Path) -> None:
    """``handshake_timeout_s``: with nothing answering, open() gives up after that long (per command)."""
    took: dict[float, float] = {}
    for timeout in (0.3, 1.2):
        device = PtyDevice(tmp_path / f"silent-{timeout}")
        driver = _pn532(device, handshake_timeout_s=timeout)
        started = time.monotonic()
        try:
            with pytest.raises(DeviceError, match=rf"no answer to GetFirmwareVersion within {timeout:g} s"):
                driver.open()
            took[timeout] = time.monotonic() - started
        finally:
            driver.close()
            device.unplug()
    assert 0.25 <= took[0.3] < 0.8 and 1.15 <= took[1.2] < 2.0, took
