"""Topics the broker acknowledged but did not deliver: held back, then probed with one event, per topic.

An MQTT 5 PUBACK with reason 0x10 "No matching subscribers" is a success code in the spec, yet nobody received
the message; a reason >= 0x80 (not authorized, quota exceeded) is a refusal. Either way the event was not
delivered, so it must stay in the outbox. Sending every queued event again and again would flood the broker while
the hub is away, so the publisher holds the *topic* instead: its rows are skipped (other topics keep flowing, so a
hub that subscribes only to some event types does not block the others), and when the hold ends one event, the
oldest of that topic, goes out as a probe. A probe acknowledged with reason 0 releases the topic (its rows are sent
again in order); another 0x10 holds it again for longer (capped, jittered backoff).

Pure bookkeeping on monotonic time: the publisher's network thread owns an instance; ``snapshot`` is read by
health from another thread and only ever sees a whole dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.backoff import Backoff

#: MQTT 5 reason code: the broker accepted the message, but no subscription matched its topic.
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIBER = "no subscriber"
#: A probe whose PUBACK never came (lost with a connection) is sent again after this long.
PROBE_TIMEOUT_S = 30.0


@dataclass
class Hold:
    """One held topic: why, since when, until when, and the probe in flight (a row id) if any."""

    reason: str
    since: float
    until: float
    backoff: Backoff
    probe: int | None = None
    undelivered: int = 1
    #: Smallest row id skipped while held: where sending starts again once the topic is released.
    skipped_from: int | None = None


class TopicHolds:
    """Which topics are held, and which are due for a probe."""

    def __init__(self, initial_s: float = 1.0, cap_s: float = 5.0, refused_cap_s: float = 30.0) -> None:
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.refused_cap_s = refused_cap_s
        self._holds: dict[str, Hold] = {}
        self._view: dict[str, dict[str, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._holds)

    @staticmethod
    def reason_of(code: int, text: str) -> str:
        return NO_SUBSCRIBER if code == NO_MATCHING_SUBSCRIBERS else f"refused: {text or hex(code)}"

    def undelivered(self, topic: str, code: int, text: str, now: float) -> Hold | None:
        """A PUBACK on ``topic`` with a reason other than 0; returns the new hold when the topic was not held."""
        reason = self.reason_of(code, text)
        hold = self._holds.get(topic)
        if hold is None:
            cap = self.cap_s if code == NO_MATCHING_SUBSCRIBERS else self.refused_cap_s
            backoff = Backoff(self.initial_s, cap)
            hold = Hold(reason, now, now + backoff.next_delay(), backoff)
            self._holds[topic] = hold
            self._publish_view(now)
            return hold
        hold.undelivered += 1
        if hold.probe is not None:  # the probe (or a row in flight before the hold) came back undelivered
            hold.probe = None
            hold.until = now + hold.backoff.next_delay()
        if hold.reason != reason:
            hold.reason = reason
            self._publish_view(now)
        return None

    def delivered(self, topic: str, now: float) -> Hold | None:
        """A PUBACK with reason 0 on ``topic``: the released hold, if it was held."""
        hold = self._holds.pop(topic, None)
        if hold is not None:
            self._publish_view(now)
        return hold

    def held(self, topic: str, row_id: int) -> bool:
        """Whether a row of ``topic`` must be skipped now (remembering where the skipping began)."""
        hold = self._holds.get(topic)
        if hold is None:
            return False
        if hold.skipped_from is None or row_id < hold.skipped_from:
            hold.skipped_from = row_id
        return True

    def due(self, now: float) -> list[str]:
        """Held topics whose wait is over: each gets one probe (a probe lost in flight is sent again)."""
        return [topic for topic, hold in self._holds.items() if now >= hold.until]

    def probing(self, topic: str, row_id: int, now: float) -> None:
        hold = self._holds[topic]
        hold.probe = row_id
        hold.until = now + PROBE_TIMEOUT_S

    def forget(self, topic: str, now: float) -> None:
        """Nothing of ``topic`` is left to send (acknowledged, expired, erased): no hold to keep."""
        if self._holds.pop(topic, None) is not None:
            self._publish_view(now)

    def _publish_view(self, now: float) -> None:
        self._view = {topic: {"reason": h.reason, "since_mono": h.since} for topic, h in self._holds.items()}

    def snapshot(self, now: float) -> dict[str, dict[str, Any]]:
        """Per held topic: why, and for how long (seconds), for ``health``."""
        view = self._view
        return {topic: {"reason": v["reason"], "for_s": round(now - v["since_mono"], 1)} for topic, v in view.items()}

    def state(self) -> str | None:
        """``no subscriber`` if any topic lacks one, else ``refused: ...`` if any is refused, else ``None``."""
        reasons = [v["reason"] for v in self._view.values()]
        if NO_SUBSCRIBER in reasons:
            return NO_SUBSCRIBER
        return reasons[0] if reasons else None
