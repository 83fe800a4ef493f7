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

from agent.config.schema import CardReaderPlacement
from agent.events import BarcodeScanned, EventBody
from agent.identity.cards import CardIdentity, CardIdentityError, card_tapped, load_registry, load_secret
from agent.runtime.pipeline import Pipeline, RuntimeContext
from agent.scene.identity import SERVICE_NAME as FUSION_SERVICE
from drivers.base import SerialRead
from drivers.registry import driver_class

if TYPE_CHECKING:
    from agent.config.schema import StoreConfig

CARD_CONFIDENCE = 0.99  # a card proves who holds it, not that they are the person at the point


class SerialEvents(Pipeline[SerialRead]):
    source_kind = "serial"

    def __init__(
        self,
        source: str,
        context: RuntimeContext,
        cards: CardIdentity | None,
        placement: CardReaderPlacement | None,
    ) -> None:
        super().__init__("serial-events", source)
        self.context = context
        self.cards = cards
        self.placement = placement

    def process(self, item: SerialRead) -> Iterable[EventBody]:
        if item.kind == "barcode":
            return [
                BarcodeScanned(
                    captured_at=item.capture.wall_time, device=item.source, code=item.value, symbology=item.symbology
                )
            ]
        if self.cards is None:  # build() loads the identity for every card reader; this is a driver bug
            raise RuntimeError(f"{item.source}: card read from a device not declared as a card reader")
        event = card_tapped(item.source, item.value, self.cards, item.capture.wall_time)
        if event.member_id is not None and self.placement is not None:
            self._identify_track(event.member_id)
        return [event]

    def _identify_track(self, member_id: str) -> None:
        fusion = self.context.services.get(FUSION_SERVICE)
        if fusion is None or self.placement is None:
            return
        x, y = self.placement.point
        track = fusion.track_at(self.placement.camera, x, y)
        if track is None:
            self.logger.info("card of a member tapped, but no person track at %s (%s)", self.placement.camera, (x, y))
            return
        fusion.assign_identity(self.placement.camera, track, member_id, "card", CARD_CONFIDENCE)


def _card_identity(config: StoreConfig) -> CardIdentity:
    settings = config.identity.cards
    try:
        secret = load_secret(settings.secret_env, None if settings.secret_env else settings.secret_credential)
        registry = load_registry(settings.registry) if settings.registry is not None else {}
    except CardIdentityError as exc:
        from agent.runtime.agent import AgentError

        raise AgentError(f"identity.cards: {exc}") from None
    return CardIdentity(secret, registry)


def build(config: StoreConfig, context: RuntimeContext) -> list[Pipeline[SerialRead]]:
    readers = [o for kind, o in config.devices() if kind == "serial"]
    card_readers = {o.name for o in readers if driver_class("serial", o.type).produces == "card"}  # type: ignore[attr-defined]
    cards = _card_identity(config) if card_readers else None
    placements = {p.reader: p for p in config.identity.cards.placements}
    return [
        SerialEvents(o.name, context, cards if o.name in card_readers else None, placements.get(o.name))
        for o in readers
    ]
