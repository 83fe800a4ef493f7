"""Serial devices on pseudo-terminals: a PN532 that answers like the chip, and plain line senders.

The device end is the pty master; the driver opens the slave through a
``/dev/serial/by-id``-style symlink, so "unplugging" closes the master and
removes the link, like a USB adapter disappearing.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections import deque
from pathlib import Path


class PtyDevice:
    """A pty pair plus an optional symlink that can be unplugged and plugged back in."""

    def __init__(self, link: Path | None = None) -> None:
        self.link = link
        self.master = -1
        self._slave = -1
        self.plug()

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else os.ttyname(self._slave)

    def plug(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or line editing before the driver configures the port
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.link.with_name(self.link.name + ".new")
            os.symlink(os.ttyname(self._slave), tmp)
            os.replace(tmp, self.link)

    def unplug(self) -> None:
        if self.link is not None:
            self.link.unlink(missing_ok=True)
        for fd in (self.master, self._slave):
            if fd >= 0:
                os.close(fd)
        self.master = self._slave = -1

    @property
    def plugged(self) -> bool:
        return self.master >= 0

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def receive(self, timeout: float) -> bytes:
        master = self.master
        if master < 0:
            time.sleep(timeout)
            return b""
        try:
            ready, _, _ = select.select([master], [], [], timeout)
            return os.read(master, 4096) if ready else b""
        except OSError:  # EIO while nobody has the slave open, or closed by unplug()
            time.sleep(0.01)
            return b""


def _frame(body: bytes) -> bytes:
    """An information frame, built here independently of the driver's code."""
    return bytes([0, 0, 0xFF, len(body), (256 - len(body)) % 256, *body, (256 - sum(body) % 256) % 256, 0])


ACK = bytes([0, 0, 0xFF, 0, 0xFF, 0])
NACK = bytes([0, 0, 0xFF, 0xFF, 0, 0])


class Pn532Simulator:
    """Answers host frames on a :class:`PtyDevice` like a PN532 in HSU mode.

    ``card`` is the UID on the antenna (or ``None``). ``faults`` holds one-shot
    faults applied to the next responses: ``garbage`` (noise before the frame),
    ``split`` (sent in pieces), ``bad_lcs``, ``bad_dcs`` (the chip repeats the
    good frame when NACKed), ``error`` (an error frame) and ``silent`` (no answer).
    """

    def __init__(self, device: PtyDevice) -> None:
        self.device = device
        self.card: bytes | None = None
        self.faults: deque[str] = deque()
        self.commands: list[int] = []
        #: Every command frame received: (monotonic time, command code, parameters).
        self.frames: list[tuple[float, int, bytes]] = []
        #: Monotonic times of the host's ACKs (each aborts a command that got no answer).
        self.ack_times: list[float] = []
        self.nacks = 0
        self.acks_from_host = 0
        self.polls = 0
        self._last_response = b""
        self._buffer = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pn532-sim", daemon=True)

    def __enter__(self) -> Pn532Simulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.is_set():
            data = self.device.receive(0.02)
            if not data:
                continue
            self._buffer += data
            self._consume()

    def _consume(self) -> None:
        buf = self._buffer
        while True:
            j = buf.find(b"\x00\xff")
            if j < 0 or len(buf) < j + 4:
                self._buffer = buf[max(0, len(buf) - 1) :] if j < 0 else buf[j:]
                return
            length, lcs = buf[j + 2], buf[j + 3]
            if (length, lcs) == (0x00, 0xFF):
                self.acks_from_host += 1  # the host aborts the command in progress
                self.ack_times.append(time.monotonic())
                buf = buf[j + 4 :]
                continue
            if (length, lcs) == (0xFF, 0x00):
                self.nacks += 1
                if self._last_response:
                    self.device.send(self._last_response)
                buf = buf[j + 4 :]
                continue
            if (length + lcs) % 256 or length == 0:
                buf = buf[j + 1 :]
                continue
            if len(buf) < j + 4 + length + 1:
                self._buffer = buf[j:]
                return
            body = buf[j + 4 : j + 4 + length]
            dcs = buf[j + 4 + length]
            buf = buf[j + 5 + length :]
            if (sum(body) + dcs) % 256 or body[0] != 0xD4:
                continue
            self._answer(body[1], body[2:])

    def _answer(self, command: int, params: bytes) -> None:
        self.commands.append(command)
        self.frames.append((time.monotonic(), command, bytes(params)))
        if command == 0x02:
            body = bytes([0xD5, 0x03, 0x32, 0x01, 0x06, 0x07])
        elif command in (0x14, 0x32):
            body = bytes([0xD5, command + 1])
        elif command == 0x4A:
            self.polls += 1
            card = self.card
            if card is None:
                body = bytes([0xD5, 0x4B, 0x00])
            else:
                sak = 0x00 if len(card) == 7 else 0x08  # Ultralight/NTAG (7-byte) or MIFARE Classic
                atqa = 0x0044 if len(card) == 7 else 0x0004
                body = bytes([0xD5, 0x4B, 0x01, 0x01, atqa >> 8, atqa & 0xFF, sak, len(card), *card])
        else:
            body = bytes([0x7F])
        self.device.send(ACK)
        good = _frame(body)
        self._last_response = good
        fault = self.faults.popleft() if self.faults else None
        if fault == "silent":
            return
        if fault == "garbage":
            self.device.send(bytes([0x13, 0x00, 0xFF, 0x07, 0xFF, 0x00, 0x55, 0xAA, 0x00]))
        if fault == "error":
            self.device.send(_frame(bytes([0x7F])))
            return
        if fault == "bad_lcs":
            bad = bytearray(good)
            bad[4] ^= 0x01
            self.device.send(bytes(bad))
            return
        if fault == "bad_dcs":
            bad = bytearray(good)
            bad[-2] ^= 0x40
            self.device.send(bytes(bad))
            return
        if fault == "split":
            for i in range(0, len(good), 3):
                self.device.send(good[i : i + 3])
                time.sleep(0.01)
            return
        self.device.send(good)
