"""Identity fusion: an identity given to a track appears in its later events, with per-modality confidence."""

from __future__ import annotations

import threading

import pytest

from agent.events import EventStamper
from agent.identity.fusion import IdentityFusion, fuse
from agent.pipelines.people.analytics import SceneAnalyzer
from agent.pipelines.people.events import ZoneEntered, ZoneLeft, ZoneOccupancy
from agent.pipelines.people.geometry import LineGeometry, ZoneGeometry
from agent.schemas import validate_payload

ZONE = ZoneGeometry("shelf", [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)], queue=False)
LINE = LineGeometry("door", (200.0, 0.0), (200.0, 100.0), False)


def test_identity_given_to_a_track_appears_in_later_events_and_payloads_validate() -> None:
    fusion = IdentityFusion()
    a = SceneAnalyzer("cam", [ZONE], [LINE], identity=lambda t: fusion.identity("cam", t))
    events = []
    for i in range(60):
        if i == 20:  # the face pipeline recognises the person mid-visit
            fusion.assign_identity("cam", "abc123-7", "member-42", "face", 0.9)
        if i == 25:  # and they tap their card at the reader next to the camera
            fusion.assign_identity("cam", "abc123-7", "member-42", "card", 0.99)
        x = 50.0 if i < 40 else 150.0 + (i - 40) * 5
        events += a.update(i / 10, 1_700_000_000 + i / 10, {"abc123-7": (x, 50.0)})
    entered = [e for e in events if isinstance(e, ZoneEntered)]
    assert entered and entered[0].identity is None  # before identification: anonymous
    left = next(e for e in events if isinstance(e, ZoneLeft))
    crossed = next(e for e in events if e.TYPE in ("person.entered", "person.exited"))
    for later in (left, crossed):
        claim = later.identity  # type: ignore[attr-defined]
        assert claim is not None and claim.member_id == "member-42"
        assert claim.modalities == {"card": 0.99, "face": 0.9}
        assert claim.fused_confidence == pytest.approx(1 - 0.1 * 0.01)
    stamper = EventStamper("demo-store", "entrance-1", iter(range(1, 1000)).__next__)
    for e in events:
        assert not isinstance(e, ZoneOccupancy) or e.count in (0, 1)
        validate_payload(stamper.stamp(e).to_payload())


def test_weaker_conflicting_identity_is_ignored_stronger_replaces() -> None:
    fusion = IdentityFusion()
    fusion.assign_identity("cam", "t1", "alice", "face", 0.8)
    assert fusion.assign_identity("cam", "t1", "bob", "appearance", 0.5).member_id == "alice"
    assert fusion.assign_identity("cam", "t1", "bob", "card", 0.99).member_id == "bob"
    with pytest.raises(ValueError, match="unknown modality 'iris'"):
        fusion.assign_identity("cam", "t1", "bob", "iris", 0.5)
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        fusion.assign_identity("cam", "t1", "bob", "face", 1.5)


def test_identity_survives_a_relink_with_scaled_confidence() -> None:
    fusion = IdentityFusion()
    fusion.assign_identity("cam", "old", "member-1", "face", 0.9)
    claim = fusion.relink(("cam", "old"), ("cam2", "new"), {"appearance": 0.8, "gait": 0.5})
    assert claim is not None and claim.member_id == "member-1"
    assert claim.modalities["face"] == pytest.approx(0.9 * fuse({"appearance": 0.8, "gait": 0.5}))
    assert fusion.identity("cam", "old") is None and fusion.member_of("cam2", "new") == "member-1"


def test_track_at_and_concurrent_assignments() -> None:
    fusion = IdentityFusion()
    fusion.publish_tracks("cam", {"big": (0, 0, 200, 400), "small": (50, 50, 100, 200)})
    assert fusion.track_at("cam", 75, 60) == "small" and fusion.track_at("cam", 150, 300) == "big"
    assert fusion.track_at("cam", 500, 500) is None
    threads = [
        threading.Thread(target=lambda k=k: fusion.assign_identity("cam", f"t{k}", "m", "face", 0.5)) for k in range(50)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(fusion.member_of("cam", f"t{k}") == "m" for k in range(50))
