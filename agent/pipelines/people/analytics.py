"""Scene analytics of one camera: line crossings, zone presence with dwell, occupancy and queues.

Fed the anchor point of every confirmed track each frame. Hysteresis keeps a
stationary person from producing a stream of events (Frigate's issue #7281):
a line crossing needs the track to leave a dead band on the other side, a
zone entry or exit needs ``enter_frames`` consecutive frames, and occupancy
is sent on change at most every ``occupancy_min_interval_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from agent.events import EventBody
from agent.identity.fusion import IdentityClaim
from agent.pipelines.people.events import (
    PersonEntered,
    PersonExited,
    QueueLength,
    ZoneEntered,
    ZoneLeft,
    ZoneOccupancy,
)
from agent.pipelines.people.geometry import (
    LineGeometry,
    Point,
    ZoneGeometry,
    polygon_depth,
    segments_intersect,
    signed_distance,
)

logger = logging.getLogger(__name__)

IdentityLookup = Callable[[str], IdentityClaim | None]


@dataclass(frozen=True)
class AnalyticsSettings:
    enter_frames: int = 3
    deadband_px: float = 5.0
    occupancy_min_interval_s: float = 5.0
    occupancy_every_s: float = 60.0
    #: A track not seen for longer than this no longer counts in occupancy and queues (it may still come back:
    #: its zone presence ends only when the tracker gives it up).
    unseen_grace_s: float = 0.5


@dataclass
class _Presence:
    inside: bool = False
    streak: int = 0  # consecutive frames disagreeing with ``inside``
    since: float = 0.0  # when the confirmed entry started (first inside frame)
    flip_at: float = 0.0  # first frame of the current disagreeing streak


@dataclass
class _LineSide:
    side: int  # +1 right, -1 left
    anchor: Point  # where that side was last confirmed


@dataclass
class _Counter:
    """Rate-limited reporting of one integer (zone occupancy or queue length)."""

    sent: int | None = None
    sent_at: float = float("-inf")
    heartbeat_at: float = float("-inf")


@dataclass
class _TrackState:
    zones: dict[str, _Presence] = field(default_factory=dict)
    lines: dict[str, _LineSide] = field(default_factory=dict)
    seen: float = 0.0


class SceneAnalyzer:
    """Turns per-frame track positions into scene events for one camera."""

    def __init__(
        self,
        camera: str,
        zones: Sequence[ZoneGeometry],
        lines: Sequence[LineGeometry],
        settings: AnalyticsSettings | None = None,
        identity: IdentityLookup | None = None,
        queue_min_wait_s: dict[str, float] | None = None,
    ) -> None:
        self.camera = camera
        self.zones = list(zones)
        self.lines = list(lines)
        self.settings = settings or AnalyticsSettings()
        self.identity = identity or (lambda _track: None)
        self.queue_min_wait_s = queue_min_wait_s or {}
        self._tracks: dict[str, _TrackState] = {}
        self._occupancy = {z.name: _Counter() for z in self.zones}
        self._queues = {z.name: _Counter() for z in self.zones if z.queue}
        self.crossings = {ln.name: {"in": 0, "out": 0} for ln in self.lines}

    def update(self, now: float, wall: float, anchors: dict[str, Point]) -> list[EventBody]:
        """One frame: ``anchors`` maps each confirmed track id to its anchor point in pixels.

        ``now`` is a monotonic time in seconds (for dwell), ``wall`` the capture's wall-clock time.
        """
        events: list[EventBody] = []
        for track_id, p in anchors.items():
            state = self._tracks.setdefault(track_id, _TrackState())
            state.seen = now
            events.extend(self._lines(track_id, state, p, wall))
            events.extend(self._zones(track_id, state, p, now, wall))
        events.extend(self._counts(now, wall))
        return events

    def end_tracks(self, now: float, wall: float, track_ids: Iterable[str]) -> list[EventBody]:
        """Tracks that ended: close their zone presences (``track_ended`` true)."""
        events: list[EventBody] = []
        for track_id in track_ids:
            state = self._tracks.pop(track_id, None)
            if state is None:
                continue
            for zone_name, presence in state.zones.items():
                if presence.inside:
                    events.append(self._left(track_id, zone_name, presence.since, now, wall, ended=True))
        events.extend(self._counts(now, wall))
        return events

    def rekey(self, old: str, new: str) -> None:
        """The same person under a new anonymous id: their presence and line sides carry over, no event."""
        state = self._tracks.pop(old, None)
        if state is not None:
            self._tracks[new] = state

    def occupancy(self) -> dict[str, int]:
        return {
            z.name: sum(1 for s in self._tracks.values() if s.zones.get(z.name, _Presence()).inside) for z in self.zones
        }

    def _lines(self, track_id: str, state: _TrackState, p: Point, wall: float) -> list[EventBody]:
        events: list[EventBody] = []
        band = self.settings.deadband_px
        for line in self.lines:
            d = signed_distance(p, line.a, line.b)
            if abs(d) <= band:
                continue  # inside the dead band: no decision either way
            side = 1 if d > 0 else -1
            previous = state.lines.get(line.name)
            if previous is None or previous.side == side:
                state.lines[line.name] = _LineSide(side, p)
                continue
            # Confirmed on the other side: count only if the path went through the segment itself.
            if segments_intersect(previous.anchor, p, line.a, line.b, slack=band):
                entering = (previous.side < 0) != line.invert
                cls = PersonEntered if entering else PersonExited
                self.crossings[line.name]["in" if entering else "out"] += 1
                events.append(
                    cls(
                        captured_at=wall,
                        camera=self.camera,
                        line=line.name,
                        track_id=track_id,
                        identity=self.identity(track_id),
                    )
                )
            state.lines[line.name] = _LineSide(side, p)
        return events

    def _zones(self, track_id: str, state: _TrackState, p: Point, now: float, wall: float) -> list[EventBody]:
        events: list[EventBody] = []
        need = self.settings.enter_frames
        band = self.settings.deadband_px
        for zone in self.zones:
            presence = state.zones.setdefault(zone.name, _Presence())
            # A point within the dead band of the edge agrees with the current state: no flapping on edges.
            depth = polygon_depth(p, zone.polygon)
            inside = depth > band if not presence.inside else depth >= -band
            if inside == presence.inside:
                presence.streak = 0
                continue
            if presence.streak == 0:
                presence.flip_at = now
            presence.streak += 1
            if presence.streak < need:
                continue
            presence.streak = 0
            presence.inside = inside
            if inside:
                presence.since = presence.flip_at
                events.append(
                    ZoneEntered(
                        captured_at=wall,
                        camera=self.camera,
                        zone=zone.name,
                        track_id=track_id,
                        identity=self.identity(track_id),
                    )
                )
            else:
                events.append(self._left(track_id, zone.name, presence.since, presence.flip_at, wall, ended=False))
        return events

    def _left(self, track_id: str, zone: str, since: float, now: float, wall: float, ended: bool) -> ZoneLeft:
        return ZoneLeft(
            captured_at=wall,
            camera=self.camera,
            zone=zone,
            track_id=track_id,
            dwell_s=max(0.0, now - since),
            track_ended=ended,
            identity=self.identity(track_id),
        )

    def _counts(self, now: float, wall: float) -> list[EventBody]:
        events: list[EventBody] = []
        grace = self.settings.unseen_grace_s
        for zone in self.zones:
            inside = [
                st.zones[zone.name]
                for st in self._tracks.values()
                if st.zones.get(zone.name, _Presence()).inside and now - st.seen <= grace
            ]
            counter = self._occupancy[zone.name]
            reason = self._due(counter, len(inside), now)
            if reason:
                events.append(
                    ZoneOccupancy(
                        captured_at=wall, camera=self.camera, zone=zone.name, count=len(inside), reason=reason
                    )
                )
            if zone.queue:
                min_wait = self.queue_min_wait_s.get(zone.name, 0.0)
                waits = [now - pr.since for pr in inside if now - pr.since >= min_wait]
                qc = self._queues[zone.name]
                reason = self._due(qc, len(waits), now)
                if reason:
                    events.append(
                        QueueLength(
                            captured_at=wall,
                            camera=self.camera,
                            zone=zone.name,
                            length=len(waits),
                            longest_wait_s=max(waits, default=0.0),
                        )
                    )
        return events

    def _due(self, counter: _Counter, value: int, now: float) -> str | None:
        """'change' when the value changed and the rate limit allows, 'periodic' for the heartbeat, else None."""
        s = self.settings
        if value != counter.sent and now - counter.sent_at >= s.occupancy_min_interval_s:
            counter.sent, counter.sent_at, counter.heartbeat_at = value, now, now
            return "change"
        if s.occupancy_every_s > 0 and counter.sent is not None and now - counter.heartbeat_at >= s.occupancy_every_s:
            counter.heartbeat_at = now
            return "periodic"
        return None
