"""PN532 NFC reader on a UART (HSU): wake-up, handshake, InListPassiveTarget polling, one tap per presence.

Live: ``open()`` wakes the chip, checks it with GetFirmwareVersion, sets
SAMConfiguration (normal mode) and bounds InListPassiveTarget's retries with
RFConfiguration so a poll without a card answers ``NbTg = 0`` instead of waiting
forever. ``read()`` then polls every ``poll_interval_s``. A response with a bad
data checksum is answered with NACK (the chip repeats it); a response that never
comes is aborted with ACK, and after ``max_missed_responses`` in a row the chip
counts as gone (:class:`DeviceError`, so the runtime reopens and re-handshakes).

Replay (``script:``): commands are not sent; the scripted chip frames are
handled exactly like live ones, so the same debounce applies.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from drivers.base import DeviceError, DeviceOptions, SerialKind
from drivers.serial import pn532
from drivers.serial.common import SerialDriver, SerialOptions


class Pn532Options(SerialOptions):
    type: Literal["pn532"] = Field(description="NXP PN532 NFC reader in HSU (UART) mode; reads ISO 14443 type A UIDs.")
    baudrate: int = Field(115200, description="Line speed; the PN532's HSU default is 115200.")
    poll_interval_s: float = Field(0.2, ge=0.02, le=5, description="Time between card polls.")
    response_timeout_s: float = Field(
        0.5, gt=0, le=5, description="Longest wait for the chip's answer to one poll before it is aborted."
    )
    handshake_timeout_s: float = Field(1.0, gt=0, le=10, description="Longest wait for each command while opening.")
    max_missed_responses: int = Field(
        3, ge=1, le=100, description="Polls in a row without an answer before the reader counts as gone."
    )
    absent_polls: int = Field(
        2, ge=1, le=20, description="Polls in a row without a card before it counts as removed (then a new tap)."
    )
    passive_retries: int = Field(
        2, ge=0, le=254, description="MxRtyPassiveActivation: chip-side retries per poll before answering 'no card'."
    )


class Pn532Reader(SerialDriver[Pn532Options]):
    Options: ClassVar[type[DeviceOptions]] = Pn532Options
    produces: ClassVar[SerialKind] = "card"

    def __init__(self, options: Pn532Options) -> None:
        super().__init__(options)
        self._parser = pn532.FrameParser()
        self._present: dict[str, int] = {}  # UID hex -> polls in a row without it
        self._in_flight_since: float | None = None
        self._next_poll = 0.0
        self._missed = 0
        self.firmware: str | None = None
        self.nacks_sent = 0
        self.errors = 0

    def reset_protocol(self) -> None:
        self._parser.clear()
        self._present.clear()
        self._in_flight_since = None
        self._next_poll = 0.0
        self._missed = 0

    def _error(self, what: str) -> DeviceError:
        return DeviceError(f"pn532 {self.name} ({self.where()}): {what}")

    # --- opening ---------------------------------------------------------------------------

    def start_protocol(self) -> None:
        if self.is_replay:
            return
        t = self.transport
        t.write(pn532.WAKEUP)
        info = self._transact(pn532.command_frame(pn532.GET_FIRMWARE_VERSION), "GetFirmwareVersion")
        self._note_firmware(info.data)
        self._transact(pn532.sam_configuration(), "SAMConfiguration")
        self._transact(pn532.max_retries(self.options.passive_retries), "RFConfiguration")
        self.logger.info("pn532 %s: ready on %s (%s)", self.name, self.options.port, self.firmware)

    def _transact(self, frame: bytes, what: str) -> pn532.Information:
        """Send one command and wait for its response (code = command + 1), NACKing bad checksums."""
        t = self.transport
        expected = frame[6] + 1
        t.write(frame)
        deadline = t.clock() + self.options.handshake_timeout_s
        while (remaining := deadline - t.clock()) > 0:
            for item in self._parser.feed(t.read(remaining)):
                if isinstance(item, pn532.BadChecksum):
                    self.nacks_sent += 1
                    t.write(pn532.NACK_FRAME)
                elif isinstance(item, pn532.ErrorFrame):
                    raise self._error(f"the chip rejected {what} (error frame)")
                elif isinstance(item, pn532.Information) and item.tfi == pn532.TFI_CHIP and item.command == expected:
                    return item
        raise self._error(
            f"no answer to {what} within {self.options.handshake_timeout_s:g} s "
            "(is the board in HSU mode, wired TX->RX / RX->TX, and powered?)"
        )

    def _note_firmware(self, data: bytes) -> None:
        if len(data) >= 4:
            self.firmware = f"PN5{data[1]:02X} firmware {data[2]}.{data[3]}"

    # --- polling ---------------------------------------------------------------------------

    def poll(self, timeout: float) -> None:
        t = self.transport
        now = t.clock()
        if self.is_replay:
            wait = timeout
        elif self._in_flight_since is None:
            if now >= self._next_poll:
                t.write(pn532.in_list_passive_target(1))
                self._in_flight_since = now
                wait = min(timeout, self.options.response_timeout_s)
            else:
                wait = min(timeout, self._next_poll - now)
        else:
            wait = min(timeout, self._in_flight_since + self.options.response_timeout_s - now)
        data = t.read(max(0.0, wait))
        for item in self._parser.feed(data):
            self._handle(item)
        if self._in_flight_since is not None and t.clock() - self._in_flight_since >= self.options.response_timeout_s:
            self._missed_response()

    def _missed_response(self) -> None:
        self._missed += 1
        self._in_flight_since = None
        self._next_poll = self.transport.clock()
        for item in self._parser.resync():
            self._handle(item)
        if self._missed >= self.options.max_missed_responses:
            raise self._error(f"no answer to {self._missed} polls in a row (chip unpowered or reset?)")
        self.transport.write(pn532.ACK_FRAME)  # an ACK from the host aborts the command in progress

    def _handle(self, item: pn532.Pn532Frame) -> None:
        if isinstance(item, pn532.BadChecksum):
            self.reject("frame with a bad data checksum", b"")
            if not self.is_replay and self._in_flight_since is not None:
                self.nacks_sent += 1
                self.transport.write(pn532.NACK_FRAME)
            return
        if isinstance(item, pn532.ErrorFrame):
            self.errors += 1
            self._answered()
            return
        if not isinstance(item, pn532.Information) or item.tfi != pn532.TFI_CHIP:
            return  # ACK, NACK, or our own echo
        if item.command == pn532.GET_FIRMWARE_VERSION + 1:
            self._note_firmware(item.data)
        if item.command != pn532.IN_LIST_PASSIVE_TARGET + 1:
            return
        self._answered()
        try:
            targets = pn532.parse_target_list(item.data)
        except pn532.ResponseError as exc:
            self.reject(f"bad InListPassiveTarget response ({exc})", item.data)
            return
        seen = {target.uid_hex: target for target in targets}
        for uid in list(self._present):
            if uid in seen:
                self._present[uid] = 0
                continue
            self._present[uid] += 1
            if self._present[uid] >= self.options.absent_polls:
                del self._present[uid]
        for uid, target in seen.items():
            if uid not in self._present:
                self._present[uid] = 0
                self.emit(
                    "card",
                    uid,
                    detail={"protocol": "iso14443a", "atqa": f"{target.atqa:04X}", "sak": f"{target.sak:02X}"},
                )

    def _answered(self) -> None:
        self._in_flight_since = None
        self._missed = 0
        self._next_poll = self.transport.clock() + self.options.poll_interval_s
