"""``privacy.retention.anonymous_track_s`` in the people pipeline: no anonymous id outlives it, counts stay exact.

Real PETS2009 frames through the real detector and tracker, twice: with ids kept for the whole visit, and with
ids limited to 2 s. The second run must give every anonymous id a life of at most 2 s (the same person gets a
new, unrelated id) while reporting exactly the same zone entries, exits and occupancy.
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.pipelines.people.events import PersonEntered, PersonExited, ZoneEntered, ZoneLeft, ZoneOccupancy
from tests.scene.helpers import frame, pipeline

pytestmark = pytest.mark.slow
FRAMES = 250  # 25 s at 10 fps
LIMIT_S = 2.0
SCENE = {
    "normalized": True,
    "zones": [{"name": "plaza", "points": [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]}],
    "lines": [{"name": "mid", "points": [[0.5, 0.0], [0.5, 1.0]]}],
}


def run(pets_frames: list[Any], detector: Any, anonymous_id_s: float) -> dict[str, Any]:
    p = pipeline("pets", {"detect_every": 2, "scenes": {"pets": SCENE}}, detector, anonymous_id_s=anonymous_id_s)
    events = []
    seen: dict[str, list[float]] = {}  # anonymous id -> capture times it was used
    for i, image in enumerate(pets_frames[:FRAMES]):
        f = frame("pets", i, image)
        events += p.process(f)
        for track in p.tracker.active():
            seen.setdefault(p.key(track), []).append(f.capture.wall_time)
    for e in events:
        if getattr(e, "track_id", None):
            seen.setdefault(e.track_id, []).append(e.captured_at)
    return {"events": events, "seen": seen}


def summary(events: list[Any]) -> dict[str, Any]:
    return {
        "entered": sum(isinstance(e, ZoneEntered) for e in events),
        "left": sum(isinstance(e, ZoneLeft) for e in events),
        "crossings": sum(isinstance(e, PersonEntered | PersonExited) for e in events),
        "occupancy": [e.count for e in events if isinstance(e, ZoneOccupancy)],
    }


def test_anonymous_ids_live_at_most_the_limit_and_counts_do_not_change(pets_frames: list[Any], detector: Any) -> None:
    kept = run(pets_frames, detector, 3600.0)
    limited = run(pets_frames, detector, LIMIT_S)
    lives = {key: max(times) - min(times) for key, times in limited["seen"].items()}
    longest = max(lives.values())
    long_before = max(max(t) - min(t) for t in kept["seen"].values())
    print(
        f"\nlongest anonymous id: {long_before:.1f} s unlimited, {longest:.1f} s with a {LIMIT_S:.0f} s limit; "
        f"ids issued {len(kept['seen'])} -> {len(limited['seen'])}; events {summary(limited['events'])}"
    )
    assert long_before > 3 * LIMIT_S, "PETS has people in view far longer than the limit"
    assert longest <= LIMIT_S + 0.2  # one frame at 10 fps of slack (rotation happens on the next frame)
    assert len(limited["seen"]) > len(kept["seen"])
    assert summary(limited["events"]) == summary(kept["events"])
