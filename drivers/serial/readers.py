"""Line-oriented serial readers: ASCII card readers (incl. RDM6300 125 kHz) and barcode scanners."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from drivers.base import DeviceOptions, SerialKind
from drivers.serial.common import RepeatFilter, SerialDriver, SerialOptions
from drivers.serial.lines import LineSplitter, Rdm6300Splitter, parse_barcode_line, parse_card_line, parse_rdm6300


class AsciiReaderOptions(SerialOptions):
    type: Literal["ascii-reader"] = Field(
        description="Card reader that prints each UID as a text line (hex or decimal), or an RDM6300 125 kHz module."
    )
    format: Literal["hex", "decimal", "rdm6300"] = Field(
        "hex",
        description="hex: UID as hex digits (':' '-' '.' or spaces allowed); decimal: UID as an unsigned number; "
        "rdm6300: STX + 10 hex + checksum + ETX frames.",
    )
    uid_bytes: Literal[4, 7, 10] = Field(4, description="UID length in bytes for the decimal format.")
    reverse: bool = Field(False, description="The reader prints the UID bytes in reverse (little-endian) order.")
    prefix: str = Field("", max_length=16, description="Text the reader puts before each UID (removed).")
    repeat_window_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="The same card seen again within this time of its last sighting is the same tap "
        "(readers repeat while a card is held).",
    )


class AsciiCardReader(SerialDriver[AsciiReaderOptions]):
    Options: ClassVar[type[DeviceOptions]] = AsciiReaderOptions
    produces: ClassVar[SerialKind] = "card"

    def __init__(self, options: AsciiReaderOptions) -> None:
        super().__init__(options)
        self._lines = LineSplitter()
        self._frames = Rdm6300Splitter()
        self._repeats = RepeatFilter(options.repeat_window_s)

    def reset_protocol(self) -> None:
        self._lines.clear()
        self._frames.clear()
        self._repeats.clear()

    def poll(self, timeout: float) -> None:
        data = self.transport.read(timeout)
        if not data:
            return
        o = self.options
        if o.format == "rdm6300":
            for frame in self._frames.feed(data):
                self._card(parse_rdm6300(frame), frame)
            return
        for line in self._lines.feed(data):
            self._card(parse_card_line(line, o.format, o.uid_bytes, o.reverse, o.prefix), line)

    def _card(self, uid: str | None, raw: bytes) -> None:
        if uid is None:
            self.reject("not a card line", raw)
            return
        if not self._repeats.repeated(uid, self.transport.clock()):
            self.emit("card", uid)


class BarcodeOptions(SerialOptions):
    type: Literal["barcode"] = Field(description="Barcode scanner in serial (or USB CDC) mode: one code per line.")
    prefix: str = Field("", max_length=16, description="Prefix configured on the scanner (required, removed).")
    suffix: str = Field(
        "", max_length=16, description="Suffix configured on the scanner before CR/LF (required, removed)."
    )
    aim_id: bool = Field(False, description="The scanner sends AIM symbology identifiers (]E0, ]C1, ]Q1 ...).")
    verify_ean: bool = Field(
        True, description="Reject 8/12/13-digit EAN/UPC codes whose check digit is wrong (misreads)."
    )
    max_length: int = Field(128, ge=1, le=4096, description="Longest code accepted; longer lines are noise.")
    repeat_window_s: float = Field(
        0.0, ge=0, le=10, description="Ignore the same code repeated within this time (0: every scan counts)."
    )

    @model_validator(mode="after")
    def _printable_affixes(self) -> BarcodeOptions:
        for name in ("prefix", "suffix"):
            if any(c in "\r\n" for c in getattr(self, name)):
                raise ValueError(f"{name} must not contain CR or LF (they end the line)")
        return self


class BarcodeScanner(SerialDriver[BarcodeOptions]):
    Options: ClassVar[type[DeviceOptions]] = BarcodeOptions
    produces: ClassVar[SerialKind] = "barcode"

    def __init__(self, options: BarcodeOptions) -> None:
        super().__init__(options)
        self._lines = LineSplitter(max_line=options.max_length + 64)
        self._repeats = RepeatFilter(options.repeat_window_s)

    def reset_protocol(self) -> None:
        self._lines.clear()
        self._repeats.clear()

    def poll(self, timeout: float) -> None:
        data = self.transport.read(timeout)
        if not data:
            return
        o = self.options
        for line in self._lines.feed(data):
            code = parse_barcode_line(line, o.prefix, o.suffix, o.aim_id, o.verify_ean, o.max_length)
            if code is None:
                self.reject("not a barcode line", line)
                continue
            if not self._repeats.repeated(code.code, self.transport.clock()):
                self.emit("barcode", code.code, symbology=code.symbology)
