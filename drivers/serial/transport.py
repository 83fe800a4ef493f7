"""Byte transports under the serial drivers: a real port (pyserial) or a byte-script replay.

Both give ``read(timeout) -> bytes`` that never blocks past ``timeout`` and a
``clock()`` the protocol layer uses for debouncing: monotonic time for a port
and a real-time script, the script's own timeline for an as-fast-as-possible
replay (so debouncing is the same at any replay speed).
"""

from __future__ import annotations

import logging
import os
import select
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.base import DeviceError, EndOfStream
from drivers.serial.script import ScriptError, Send, Step, Wait, load_script

if TYPE_CHECKING:
    import serial

logger = logging.getLogger(__name__)


class Transport(ABC):
    """A byte pipe to one serial device."""

    is_replay = False

    def __init__(self, device: str) -> None:
        self.device = device

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self, timeout: float) -> bytes:
        """Bytes that arrived within ``timeout`` (``b""`` if none); ``DeviceError`` when the device is gone."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def clock(self) -> float:
        return time.monotonic()


class PortTransport(Transport):
    """A serial port opened exclusively (``flock``), so two agents never share a reader.

    Waiting uses ``select`` on the file descriptor, so a read never blocks longer
    than asked. An unplugged USB adapter (or a closed pty master) shows up as a
    readable descriptor returning nothing or ``EIO``; pyserial turns that into
    ``SerialException``, which becomes :class:`DeviceError` naming the device and path.
    The configured path is also checked while idle: a ``/dev/serial/by-id`` link
    vanishes the moment the adapter is unplugged.
    """

    def __init__(self, device: str, port: str, settings: dict[str, Any], write_timeout: float = 1.0) -> None:
        super().__init__(device)
        self.port = port
        self.settings = settings
        self.write_timeout = write_timeout
        self._serial: serial.Serial | None = None
        self._last_path_check = 0.0

    def _error(self, what: str) -> DeviceError:
        return DeviceError(f"serial {self.device} ({self.port}): {what}")

    def open(self) -> None:
        import serial

        if not os.path.exists(self.port):
            raise self._error("port not found (unplugged, or wrong /dev/serial/by-id path?)")
        try:
            self._serial = serial.Serial(
                self.port, timeout=0, write_timeout=self.write_timeout, exclusive=True, **self.settings
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise self._error(f"cannot open: {exc}") from exc
        logger.debug("serial %s: opened %s %s", self.device, self.port, self.settings)

    def _port(self) -> serial.Serial:
        if self._serial is None:
            raise self._error("not open")
        return self._serial

    def read(self, timeout: float) -> bytes:
        import serial

        port = self._port()
        try:
            ready, _, _ = select.select([port.fileno()], [], [], max(0.0, timeout))
            if not ready:
                now = time.monotonic()
                if now - self._last_path_check >= 1.0:
                    self._last_path_check = now
                    if not os.path.exists(self.port):
                        raise self._error("port disappeared (unplugged)")
                return b""
            data: bytes = port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError, ValueError, TypeError) as exc:
            raise self._error(f"read failed: {exc}") from exc
        if not data:
            raise self._error("device reports readiness to read but returned no data (disconnected)")
        return data

    def write(self, data: bytes) -> None:
        import serial

        port = self._port()
        try:
            port.write(data)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise self._error(f"write failed: {exc}") from exc

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception as exc:  # closing a vanished device may fail; it is released either way
                logger.debug("serial %s: error closing %s: %s", self.device, self.port, exc)
            self._serial = None


class ScriptTransport(Transport):
    """Replays a byte script: each ``hex``/``text`` step is one read, ``wait`` is silence.

    Writes from the driver (PN532 commands) are accepted and discarded: the
    script is what the device answered. With ``realtime`` the waits are real;
    otherwise they only advance :meth:`clock`. After the last step,
    :class:`EndOfStream`.
    """

    is_replay = True

    def __init__(self, device: str, path: Path, realtime: bool) -> None:
        super().__init__(device)
        self.path = path
        self.realtime = realtime
        self._steps: list[Step] = []
        self._index = 0
        self._script_time = 0.0
        self._start: float | None = None

    def open(self) -> None:
        try:
            self._steps = load_script(self.path)
        except ScriptError as exc:
            raise DeviceError(f"serial {self.device}: {exc}") from exc
        self._index = 0
        self._script_time = 0.0
        self._start = None

    def clock(self) -> float:
        return time.monotonic() if self.realtime else self._script_time

    def read(self, timeout: float) -> bytes:
        if self._start is None:
            self._start = time.monotonic()
        deadline = time.monotonic() + max(0.0, timeout)
        while self._index < len(self._steps):
            step = self._steps[self._index]
            if isinstance(step, Wait):
                if self.realtime:
                    due = self._start + self._script_time + step.seconds
                    now = time.monotonic()
                    if due > deadline:
                        time.sleep(max(0.0, deadline - now))
                        return b""
                    time.sleep(max(0.0, due - now))
                self._script_time += step.seconds
                self._index += 1
                continue
            assert isinstance(step, Send)
            self._index += 1
            return step.data
        raise EndOfStream(f"serial {self.device}: end of byte script {self.path}")

    def write(self, data: bytes) -> None:
        if not self._steps:
            raise DeviceError(f"serial {self.device}: write before open")

    def close(self) -> None:
        self._steps = []
