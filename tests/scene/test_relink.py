"""Re-link on real video: an identified member's track is cut by a gap of blank frames, then re-linked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent.identity.fusion import IdentityFusion
from agent.pipelines.people.reid import LostMember
from models.people.detector import iou_matrix
from tests.scene.helpers import frame, pipeline

START, IDENTIFY, GAP_FROM, GAP_LEN, CHECK = 150, 175, 190, 40, 250  # PETS frame numbers; 40 frames = 4 s > lost_track_s


def largest(p: Any) -> Any:
    return max(p.tracker.active(), key=lambda t: (t.box[2] - t.box[0]) * (t.box[3] - t.box[1]))


@pytest.fixture(scope="module")
def reference(pets_frames: list[np.ndarray], detector: Any) -> tuple[tuple[float, ...], int]:
    """Without a gap: where the person identified at IDENTIFY is at CHECK (plain tracking, no re-id)."""
    p = pipeline("pets", {"detect_every": 2}, detector)
    for i in range(START, CHECK + 1):
        list(p.process(frame("pets", i, pets_frames[i])))
        if i == IDENTIFY:
            track_id = largest(p).track_id
    box = next(t.box for t in p.tracker.active() if t.track_id == track_id)
    return box, track_id


def test_identified_track_cut_by_a_gap_is_relinked_to_the_same_person(
    pets_frames: list[np.ndarray], detector: Any, pose: Any, appearance: Any, reference: tuple[tuple[float, ...], int]
) -> None:
    fusion = IdentityFusion()
    p = pipeline("pets", {"detect_every": 2, "lost_track_s": 3.0}, detector, pose, appearance, fusion=fusion)
    blank = np.full_like(pets_frames[0], 127)
    for i in range(START, CHECK + 1):
        image = blank if GAP_FROM <= i < GAP_FROM + GAP_LEN else pets_frames[i]
        list(p.process(frame("pets", i, image)))
        if i == IDENTIFY:
            member_track = p.key(largest(p))
            fusion.assign_identity("pets", member_track, "member-7", "face", 0.9)
    holders = [t for t in p.tracker.active() if fusion.member_of("pets", p.key(t)) == "member-7"]
    assert len(holders) == 1, "the member's identity was not carried over the gap"
    holder = holders[0]
    assert p.key(holder) != member_track, "the gap did not end the original track"
    overlap = float(iou_matrix(np.array([holder.box], np.float32), np.array([reference[0]], np.float32))[0, 0])
    claim = fusion.identity("pets", p.key(holder))
    print(f"re-linked after {GAP_LEN} blank frames: IoU with the reference track {overlap:.2f}, claim {claim}")
    assert overlap > 0.5, "the identity went to a different person"
    assert claim is not None and "appearance" in claim.modalities and claim.modalities["face"] < 0.9


def test_a_member_lost_on_one_camera_is_forgotten_when_another_cameras_worker_expires_it(
    pets_frames: list[np.ndarray], detector: Any
) -> None:
    """The re-link memory is shared: whichever camera's worker expires a lost member clears its identity."""
    fusion = IdentityFusion()
    door = pipeline("door", {"detect_every": 1}, detector, fusion=fusion)
    aisle = pipeline("aisle", {"detect_every": 1}, detector, fusion=fusion, reid=door.reid)
    fusion.assign_identity("door", "door-7", "member-7", "face", 0.9)
    lost_at = 1.0
    door.reid.add_lost(
        LostMember("door", "door-7", "member-7", np.ones(512, np.float32), None, (0.5, 0.5), (0, 0), lost_at)
    )
    later = int((lost_at + door.settings.relink_window_s + 1.0) * 10)  # frame index at 10 fps
    list(aisle.process(frame("aisle", later, np.full_like(pets_frames[0], 127))))
    assert not door.reid.pending()
    assert fusion.member_of("door", "door-7") is None
