"""Serial events: scans become ``barcode.scanned``, card taps ``card.tapped``; always on for every serial device."""

from agent.pipelines.base import PipelinePlugin, PipelineSettings
from agent.pipelines.serial.events import BarcodeScanned, CardTapped


class SerialEventsSettings(PipelineSettings):
    """Serial events (always on: a scan or a card tap is a customer's action and is never dropped)."""


PLUGIN = PipelinePlugin(
    name="serial-events",
    settings=SerialEventsSettings,
    build="agent.pipelines.serial.stage:build",
    event_types=(BarcodeScanned, CardTapped),
    always_on=True,
)
