"""What every serial protocol driver shares: the ``port:`` / ``script:`` settings and the read loop.

``type:`` names the protocol (pn532, ascii-reader, barcode); the entry gives
either ``port:`` (a live device) or ``script:`` (a byte-script replay), exactly
one. A protocol subclass turns transport bytes into :class:`SerialRead` items.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections import deque
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, model_validator

from drivers.base import DeviceError, DeviceOptions, Driver, ExistingFile, SerialKind, SerialRead
from drivers.serial.transport import PortTransport, ScriptTransport, Transport


class SerialOptions(DeviceOptions):
    port: str | None = Field(
        None,
        description="Device path of a live reader, preferably /dev/serial/by-id/... (stable across replugging); "
        "a pseudo-terminal works too. Give port or script, not both.",
    )
    script: ExistingFile | None = Field(
        None, description="Byte-script file to replay instead of a live device (see docs/hardware.md)."
    )
    realtime: bool = Field(True, description="Replay a script with its waits in real time; false: as fast as possible.")
    baudrate: int = Field(9600, description="Line speed in bit/s.")
    bytesize: Literal[5, 6, 7, 8] = Field(8, description="Data bits.")
    parity: Literal["N", "E", "O", "M", "S"] = Field("N", description="Parity: N(one), E(ven), O(dd), M(ark), S(pace).")
    stopbits: float = Field(1, description="Stop bits: 1, 1.5 or 2.")
    rtscts: bool = Field(False, description="Hardware flow control.")
    write_timeout_s: float = Field(
        1.0, gt=0, le=10, description="Longest a write may block before the port counts as gone."
    )

    @model_validator(mode="after")
    def _one_source(self) -> SerialOptions:
        if (self.port is None) == (self.script is None):
            raise ValueError("give exactly one of port (a live device) or script (a byte-script replay)")
        if self.port is not None and not self.port.startswith("/"):
            raise ValueError(f"port must be an absolute device path such as /dev/serial/by-id/... (got {self.port!r})")
        if self.stopbits not in (1, 1.5, 2):
            raise ValueError(f"stopbits must be 1, 1.5 or 2 (got {self.stopbits:g})")
        if self.baudrate not in _BAUDRATES:
            raise ValueError(f"baudrate must be one of {', '.join(map(str, _BAUDRATES))} (got {self.baudrate})")
        return self

    def settings(self) -> dict[str, Any]:
        return {
            "baudrate": self.baudrate,
            "bytesize": self.bytesize,
            "parity": self.parity,
            "stopbits": self.stopbits,
            "rtscts": self.rtscts,
        }


_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)

SerialOptionsT = TypeVar("SerialOptionsT", bound=SerialOptions)


class SerialDriver(Driver[SerialRead, SerialOptionsT]):
    """Opens the transport, feeds bytes to the protocol, and hands out reads one at a time.

    ``is_replay`` is per instance here (a script entry replays, a port entry is
    live); the class attribute stays ``False``.
    """

    is_replay: ClassVar[bool] = False
    #: What this protocol reads: member cards or barcodes (decides how the agent turns reads into events).
    produces: ClassVar[SerialKind]

    def __init__(self, options: SerialOptionsT) -> None:
        super().__init__(options)
        self.is_replay = options.script is not None  # type: ignore[misc]
        self.logger = logging.getLogger(f"{type(self).__module__}.{self.name}")
        self._transport: Transport | None = None
        self._pending: deque[SerialRead] = deque()
        self.rejected = 0  # lines / frames that were noise or failed a check

    @property
    def realtime(self) -> bool:
        return self.options.realtime if self.options.script is not None else True

    def _make_transport(self) -> Transport:
        o = self.options
        if o.script is not None:
            return ScriptTransport(self.name, o.script, o.realtime)
        assert o.port is not None
        return PortTransport(self.name, o.port, o.settings(), o.write_timeout_s)

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise DeviceError(f"serial {self.name}: read before open")
        return self._transport

    def open(self) -> None:
        self.close()
        transport = self._make_transport()
        transport.open()
        self._transport = transport
        self._pending.clear()
        try:
            self.start_protocol()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.reset_protocol()

    def read(self, timeout: float) -> SerialRead | None:
        deadline = time.monotonic() + timeout
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.poll(remaining)
        return self._pending.popleft()

    def emit(self, kind: Literal["card", "barcode"], value: str, **extra: Any) -> None:
        # a script replayed faster than real time stamps reads on the script's own timeline (its waits)
        offset = self._transport.clock() if isinstance(self._transport, ScriptTransport) else None
        capture = self.next_capture(offset)
        self._pending.append(SerialRead(source=self.name, capture=capture, kind=kind, value=value, **extra))

    def reject(self, reason: str, data: bytes) -> None:
        """Count a read that is not a valid scan or tap. Its bytes are never logged, at any level: on a card
        reader a rejected line may still hold a card UID (the raw UID never leaves the driver)."""
        self.rejected += 1
        self.logger.debug("serial %s: ignored %s (%d bytes)", self.name, reason, len(data))

    def where(self) -> str:
        o = self.options
        return f"script {o.script}" if o.script is not None else f"port {o.port}"

    def describe(self) -> str:
        return f"{self.options.type} on {self.where()}"  # type: ignore[attr-defined]

    def start_protocol(self) -> None:
        """Called after the transport opened (e.g. the PN532 handshake)."""

    @abstractmethod
    def reset_protocol(self) -> None:
        """Forget partial frames and debounce state (called on close)."""

    @abstractmethod
    def poll(self, timeout: float) -> None:
        """Wait at most ``timeout`` for bytes and :meth:`emit` any complete reads."""


class RepeatFilter:
    """Readers repeat a held card (and scanners a held trigger): the same value again within ``window_s`` of its
    last sighting is the same read. ``window_s`` 0 lets every read through."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last: tuple[str, float] | None = None

    def repeated(self, value: str, now: float) -> bool:
        last, self._last = self._last, (value, now)
        return last is not None and last[0] == value and now - last[1] < self.window_s

    def clear(self) -> None:
        self._last = None
