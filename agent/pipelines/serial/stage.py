"""Turns serial reads into events: scans into ``barcode.scanned``, card taps into ``card.tapped``.

Always on for every serial device. Serial reads are never dropped (a card tap
is a customer's action), so this stage does no heavy work. A raw card UID goes
no further than here: it becomes the member id from the registry, or else a
keyed hash (docs/hardware.md). When a reader is placed beside a camera and the
people pipeline runs, the tap also identifies the person track standing there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from agent.events import EventBody
from agent.identity.cards import CardIdentity
from agent.pipelines.serial.events import BarcodeScanned, card_tapped
from agent.pipelines.stage import Stage
from drivers.base import DeviceOptions, SerialRead
from drivers.registry import serial_produces

if TYPE_CHECKING:
    from agent.pipelines.serial import SerialEventsSettings
    from agent.pipelines.shared import Shared, TrackIdentities

CARD_CONFIDENCE = 0.99  # a card proves who holds it, not that they are the person at the point


class SerialEventsStage(Stage[SerialRead]):
    def __init__(
        self,
        source: str,
        identities: TrackIdentities,
        cards: CardIdentity | None,
        placement: tuple[str, tuple[float, float]] | None,
    ) -> None:
        super().__init__("serial-events", source)
        self.identities = identities
        self.cards = cards
        self.placement = placement

    def process(self, item: SerialRead) -> Iterable[EventBody]:
        if item.kind == "barcode":
            return [
                BarcodeScanned(
                    captured_at=item.capture.wall_time, device=item.source, code=item.value, symbology=item.symbology
                )
            ]
        if self.cards is None:  # the wiring loads the card identity whenever a card reader is configured
            raise RuntimeError(f"{item.source}: card read from a device not declared as a card reader")
        event = card_tapped(item.source, item.value, self.cards, item.capture.wall_time)
        if event.member_id is not None and self.placement is not None:
            self._identify_track(event.member_id, *self.placement)
        return [event]

    def _identify_track(self, member_id: str, camera: str, point: tuple[float, float]) -> None:
        track = self.identities.track_at(camera, *point)
        if track is None:
            self.logger.info("card of a member tapped, but no person track at %s (%s)", camera, point)
            return
        self.identities.assign_identity(camera, track, member_id, "card", CARD_CONFIDENCE)


def card_readers(options: Iterable[DeviceOptions]) -> set[str]:
    """Names of the serial devices whose driver produces card taps."""
    return {o.name for o in options if serial_produces(o) == "card"}


def build(settings: SerialEventsSettings, shared: Shared) -> list[Stage[SerialRead]]:
    readers = card_readers(shared.devices.options("serial"))
    return [
        SerialEventsStage(
            o.name,
            shared.identities,
            shared.cards if o.name in readers else None,
            shared.card_placements.get(o.name),
        )
        for o in shared.devices.options("serial")
    ]
