"""Events: what the agent tells the hub, as frozen dataclasses with one JSON form.

A producer (a pipeline, a device runner) builds an :class:`EventBody` subclass
with what it observed. The :class:`EventStamper` wraps it in an
:class:`Event` with the envelope (``event_id``, ``seq``, store and terminal,
emit time) exactly once, where it enters delivery. ``Event.to_payload()`` is
the one place an event becomes JSON; each type's JSON Schema lives in
``agent/schemas/<type>.json`` and tests validate real payloads against it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agent import clock
from drivers.compat import StrEnum

SCHEMA_VERSION = 1


class Retention(StrEnum):
    """How the outbox treats an event class when it runs out of space."""

    PROTECTED = "protected"  # identity, consent and erasure: never dropped for space
    NORMAL = "normal"  # shopper and scene events: dropped oldest-first after telemetry
    TELEMETRY = "telemetry"  # device state, motion: dropped first


def iso_time(wall_time: float) -> str:
    """RFC 3339 UTC with milliseconds, the one time format in payloads (on every event's hot path)."""
    ms = round(wall_time * 1_000_000) // 1000  # round to microseconds first, as datetime does
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def new_event_id(now_ns: int | None = None) -> str:
    """A UUIDv7 string: sorts by creation time, unique without coordination (RFC 9562)."""
    ms = (now_ns if now_ns is not None else clock.now_ns()) // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: Payload keys that name members: a member id, or a list of them (erasure finds members under these, at any depth).
MEMBER_KEYS = frozenset({"member_id", "member_ids", "members"})


def member_ids(payload: Any) -> list[str]:
    """Every member id anywhere in a payload, in order, once each: top-level ``member_id`` and nested ones
    (``identity.member_id`` of people and zone events), and lists under ``members``/``member_ids``."""
    found: dict[str, None] = {}

    def walk(value: Any, member: bool) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, key in MEMBER_KEYS)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, member)
        elif member and isinstance(value, str) and value:
            found[value] = None

    walk(payload, False)
    return list(found)


def compact_json(obj: Any) -> str:
    """The one wire encoding of payloads (events, status, health, replies, acks): UTF-8 kept, no spaces."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class EventBody:
    """What a producer observed. Subclasses set ``TYPE`` and add their fields.

    ``captured_at`` is the wall-clock time of the capture that caused the event
    (the frame, chunk or serial read), not the time it was processed.
    """

    TYPE: ClassVar[str]
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    #: Renamed fields whose old name is still written, with the same value, for the rest of this
    #: ``schema_version`` (old name -> new name), so consumers can move over before the old one goes.
    DEPRECATED_ALIASES: ClassVar[dict[str, str]] = {}
    captured_at: float

    def fields(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.pop("captured_at")
        plain: dict[str, Any] = _plain(data)
        for old, new in self.DEPRECATED_ALIASES.items():
            plain[old] = plain[new]
        return plain


def _plain(value: Any) -> Any:
    """Turn tuples, enums and nested dataclasses into JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


@dataclass(frozen=True)
class Event:
    """A stamped event: envelope plus body, ready for the outbox."""

    event_id: str
    seq: int
    store_id: str
    terminal_id: str
    emitted_at: float
    body: EventBody
    #: Whether the wall clock was synchronised when the event was stamped (``agent.clock``): a terminal without a
    #: real-time clock stamps guesses until NTP has stepped it.
    clock_synced: bool = True

    @property
    def type(self) -> str:
        return self.body.TYPE

    @property
    def retention(self) -> Retention:
        return self.body.RETENTION

    def to_payload(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "type": self.body.TYPE,
            "event_id": self.event_id,
            "store_id": self.store_id,
            "terminal_id": self.terminal_id,
            "seq": self.seq,
            "captured_at": iso_time(self.body.captured_at),
            "emitted_at": iso_time(self.emitted_at),
            "clock_synced": self.clock_synced,
            **self.body.fields(),
        }

    def to_json(self) -> str:
        return compact_json(self.to_payload())


@dataclass
class EventStamper:
    """Assigns ``seq`` and ``event_id`` under one lock so seq order matches emit order.

    ``next_seq`` is supplied by the state store so sequence numbers keep rising
    across restarts.
    """

    store_id: str
    terminal_id: str
    next_seq: Callable[[], int]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def stamp(self, body: EventBody) -> Event:
        synced = clock.synchronised()
        with self._lock:
            now_ns = clock.now_ns()
            return Event(
                event_id=new_event_id(now_ns),
                seq=self.next_seq(),
                store_id=self.store_id,
                terminal_id=self.terminal_id,
                emitted_at=now_ns / 1e9,
                body=body,
                clock_synced=synced,
            )


# --- The event types the runtime emits itself. Pipelines define theirs beside their code and list them in
# --- their plugin (agent/pipelines/<name>/__init__.py); agent.pipelines.registry.EVENT_TYPES is the table of all.


@dataclass(frozen=True, kw_only=True)
class DeviceStateChanged(EventBody):
    """A device went online, offline, degraded, or finished (replay exhausted)."""

    TYPE: ClassVar[str] = "device.state"
    RETENTION: ClassVar[Retention] = Retention.TELEMETRY
    device: str
    kind: str
    state: str
    previous: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class StorageStateChanged(EventBody):
    """The state directory's storage changed state: ok, full, read-only or error (with the real cause).

    Sent through the outbox like any event (durable once the disk takes it again) and, while the disk fails, also
    published at once from memory, so the hub hears of a full disk while it lasts (same ``event_id``: de-duplicated).
    """

    TYPE: ClassVar[str] = "storage.state"
    RETENTION: ClassVar[Retention] = Retention.PROTECTED
    path: str
    state: str
    previous: str
    reason: str | None = None
    waiting_in_memory: int = 0
    dropped_for_memory: int = 0
