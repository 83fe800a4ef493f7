"""The ``speech.intent`` event: what a shopper asked for, never what they said word for word."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from agent.events import EventBody, Retention


@dataclass(frozen=True, kw_only=True)
class SpeechIntent(EventBody):
    """An utterance matched one of the store's intents.

    ``transcript`` is present only when ``privacy.egress.transcripts`` is on;
    audio never leaves the device. ``member_id`` is set when an identified
    member is being tracked at this terminal as the utterance ends.
    """

    TYPE: ClassVar[str] = "speech.intent"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    intent: str
    slots: dict[str, str] = field(default_factory=dict)
    language: str
    confidence: float
    microphone: str
    engine: str
    duration_s: float
    member_id: str | None = None
    transcript: str | None = None
