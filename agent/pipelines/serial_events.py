"""Turns serial reads into events: scans into ``barcode.scanned``. Always on for every serial device.

Serial reads are never dropped (a card tap is a customer's action), so this
stage does no heavy work.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from agent.events import BarcodeScanned, EventBody
from agent.runtime.pipeline import Pipeline, RuntimeContext
from drivers.base import SerialRead

if TYPE_CHECKING:
    from agent.config.schema import StoreConfig


class SerialEvents(Pipeline[SerialRead]):
    source_kind = "serial"

    def __init__(self, source: str) -> None:
        super().__init__("serial-events", source)

    def process(self, item: SerialRead) -> Iterable[EventBody]:
        if item.kind == "barcode":
            return [
                BarcodeScanned(
                    captured_at=item.capture.wall_time, device=item.source, code=item.value, symbology=item.symbology
                )
            ]
        self.logger.error("no event mapping for serial read kind %r", item.kind)
        return []


def build(config: StoreConfig, context: RuntimeContext) -> list[Pipeline[SerialRead]]:
    return [SerialEvents(name) for name in sorted(config.device_names("serial"))]
