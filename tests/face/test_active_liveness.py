"""The head-turn challenge: golden tests of the geometry, then real video, real prints and real photos turned flat."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.face.active_liveness import (
    HeadTurnChallenge,
    HeadTurnSettings,
    Outcome,
    nose_offset,
    random_steps,
    signed_turn,
)
from models.face.align import REFERENCE_112
from models.face.analyzer import FaceAnalyzer
from tests.conftest import require_data
from tests.face.conftest import as_bgr, imread


def _turned(offset: float, scale: float = 1.0) -> np.ndarray:
    """The reference landmarks with the nose moved along the eye line by ``offset`` eye distances."""
    lm = REFERENCE_112.astype(np.float64).copy() * scale
    lm[2, 0] += offset * float(np.hypot(*(lm[1] - lm[0])))
    return lm


def _run(challenge: HeadTurnChallenge, offsets: list[float], dt: float = 0.1) -> Outcome:
    verdict = challenge.verdict
    for i, off in enumerate(offsets):
        verdict = challenge.update(i * dt, _turned(off))
    return verdict.outcome


def test_nose_offset_is_zero_when_frontal_and_unchanged_by_any_affine_map_of_a_flat_picture() -> None:
    assert abs(nose_offset(REFERENCE_112)) < 0.02
    assert nose_offset(_turned(0.3)) == pytest.approx(nose_offset(REFERENCE_112) + 0.3, abs=0.05)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.normal(0, 0.4, (2, 2)) + np.eye(2)  # shear, tilt, roll, anisotropic scale: what holding a print does
        if np.linalg.det(a) < 0.2:
            continue
        warped = REFERENCE_112 @ a.T + rng.normal(0, 50, 2)
        assert nose_offset(warped) == pytest.approx(nose_offset(REFERENCE_112), abs=1e-6)
    assert signed_turn(_turned(0.3), mirrored=True) == pytest.approx(-signed_turn(_turned(0.3)))
    assert nose_offset(np.zeros((5, 2))) == 0.0


def test_challenge_passes_the_prompted_turns_and_fails_wrong_order_timeouts_gaps_and_swaps() -> None:
    turn_left_then_right = [0.0, 0.0, 0.15, 0.3, 0.35, 0.3, 0.05, -0.1, -0.3, -0.35, -0.2, 0.02]
    assert _run(HeadTurnChallenge(("left", "right"), 0.0), turn_left_then_right) is Outcome.PASSED
    wrong = HeadTurnChallenge(("right", "left"), 0.0)
    assert _run(wrong, turn_left_then_right) is Outcome.FAILED and "wrong way" in (wrong.verdict.reason or "")
    slow = HeadTurnChallenge(("left", "right"), 0.0, HeadTurnSettings(time_limit_s=0.5))
    assert _run(slow, turn_left_then_right) is Outcome.FAILED and "time limit" in (slow.verdict.reason or "")
    half = HeadTurnChallenge(("left", "right"), 0.0)
    assert _run(half, turn_left_then_right[:7]) is Outcome.PENDING and half.verdict.step == 1
    one_frame_flick = [0.0, 0.4, 0.0, 0.0]  # a single frame beyond the threshold is not a turn
    assert _run(HeadTurnChallenge(("left", "right"), 0.0), one_frame_flick) is Outcome.PENDING

    gap = HeadTurnChallenge(("left",), 0.0)
    gap.update(0.0, _turned(0.0))
    gap.update(0.1, None)
    assert gap.update(1.0, _turned(0.3)).outcome is Outcome.FAILED
    swap = HeadTurnChallenge(("left",), 0.0)
    swap.update(0.0, _turned(0.0))
    assert swap.update(0.1, _turned(0.0, scale=1.6)).outcome is Outcome.FAILED
    assert set(random_steps(2)) == {"left", "right"} and len(random_steps(3)) == 3
    with pytest.raises(ValueError):
        HeadTurnChallenge((), 0.0)


def _video_landmarks(analyzer: FaceAnalyzer, path: Path, step: int = 3) -> list[tuple[float, np.ndarray | None]]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    out: list[tuple[float, np.ndarray | None]] = []
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % step == 0:
            image = as_bgr(frame)
            found = analyzer.detector.detect(image)
            out.append((index / fps, analyzer.detector.refine(image, found[0]).landmarks if found else None))
        index += 1
    cap.release()
    return out


def test_real_head_turn_video_passes_its_own_order_and_fails_the_other(analyzer: FaceAnalyzer) -> None:
    frames = _video_landmarks(analyzer, require_data("media/spoof/replay_video/real.mp4"))
    results = {}
    for steps in (("left", "right"), ("right", "left")):
        challenge = HeadTurnChallenge(steps, 0.0)
        for t, lm in frames:
            challenge.update(t, lm)
        results[steps] = challenge.verdict
        if steps == ("left", "right"):
            offsets = [o for _, o in challenge.turns]
    print(f"\nreal.mp4: {results}; offsets {min(offsets):.2f}..{max(offsets):.2f}")
    # measured: passes left-then-right (offsets -0.28..0.61); the person never turned right first
    assert results[("left", "right")].outcome is Outcome.PASSED
    assert results[("right", "left")].outcome is Outcome.FAILED


def test_nuaa_hand_held_prints_never_pass(analyzer: FaceAnalyzer) -> None:
    root = require_data("media/spoof/nuaa/spoof_print")
    sessions: dict[str, list[Path]] = {}
    for photo in sorted(root.glob("*/*.jpg")):
        subject, _, _, session, _frame = photo.stem.split("_")
        sessions.setdefault(f"{subject}-{session}", []).append(photo)
    attempts = passed = 0
    spread = 0.0
    for photos in sessions.values():
        photos.sort(key=lambda p: int(p.stem.split("_")[-1]))
        landmarks = []
        for photo in photos:
            found = analyzer.detector.detect(imread(photo), pad=0.25)
            if found:
                landmarks.append(found[0].landmarks)
        offsets = [nose_offset(lm) for lm in landmarks]
        spread = max(spread, max(offsets) - min(offsets))
        for steps in (("left", "right"), ("right", "left")):
            challenge = HeadTurnChallenge(steps, 0.0)
            for i, lm in enumerate(landmarks):
                challenge.update(i * 0.1, lm)
            attempts += 1
            passed += challenge.verdict.outcome is Outcome.PASSED
    print(
        f"\nNUAA prints: {passed}/{attempts} challenge attempts passed; largest offset spread in a session {spread:.3f}"
    )
    # measured: 0/48, largest spread 0.14 (the challenge needs > 0.30: frontal, then beyond 0.20 on both sides)
    assert attempts >= 40 and passed == 0 and spread < 0.25


def _flat_turn(image: np.ndarray, yaw_deg: float, tilt_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """The image as a flat picture rotated in 3D (about a vertical, then a horizontal axis) seen by a pinhole camera."""
    h, w = image.shape[:2]
    f = 1.2 * max(h, w)
    k = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    ay, ax, az = np.radians([yaw_deg, tilt_deg, roll_deg])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    r = rz @ rx @ ry
    centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], dtype=np.float64)
    homography = k @ np.column_stack([r[:, 0], r[:, 1], [0.0, 0.0, 2.0 * f]]) @ centre
    homography /= homography[2, 2]
    return np.asarray(cv2.warpPerspective(image, homography, (w, h), borderMode=cv2.BORDER_REPLICATE), np.uint8)


def _portrait(analyzer: FaceAnalyzer, image: np.ndarray) -> np.ndarray:
    """A 480x480 head-and-shoulders crop around the face: the picture an attacker would print."""
    x, y, w, h = analyzer.detector.detect(image, pad=0.25)[0].box
    cx, cy, side = x + w / 2, y + h / 2, 2.5 * max(w, h)
    pad = int(side)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    left, top = int(cx - side / 2) + pad, int(cy - side / 2) + pad
    return np.asarray(cv2.resize(padded[top : top + int(side), left : left + int(side)], (480, 480)), np.uint8)


def test_a_real_photo_turned_like_a_print_never_passes(analyzer: FaceAnalyzer) -> None:
    photos = sorted(require_data("media/faces/enroll").glob("*/*.jpg"))
    assert photos
    spreads: list[float] = []
    for photo in photos:
        image = _portrait(analyzer, imread(photo))
        # frontal, swing the picture one way, back, the other way, back: what an attacker does with a print
        poses = [(0, 0, 0), (0, 0, 0), (35, 10, 5), (55, 15, 10), (55, -15, -10), (0, 0, 0), (-35, -10, 5)]
        poses += [(-55, 15, -10), (-55, -15, 10), (0, 0, 0)]
        landmarks = []
        for yaw, tilt, roll in poses:
            found = analyzer.detector.detect(_flat_turn(image, yaw, tilt, roll), pad=0.25)
            landmarks.append(found[0].landmarks if found else None)
        offsets = [nose_offset(lm) for lm in landmarks if lm is not None]
        assert len(offsets) >= 6, f"{photo}: the turned photo was not detected often enough"
        for steps in (("left", "right"), ("right", "left")):
            challenge = HeadTurnChallenge(steps, 0.0)
            for i, lm in enumerate(landmarks):
                challenge.update(i * 0.2, lm)
            assert challenge.verdict.outcome is not Outcome.PASSED, (photo.name, offsets)
        spreads.append(max(offsets) - min(offsets))
    print(f"\nphotos turned flat: offset spread per photo {np.round(spreads, 3).tolist()}")
    # measured: spreads 0.06-0.19 (perspective at 55 degrees and landmark noise). Passing needs at least 0.40
    # (beyond +0.20 and beyond -0.20); a real turn spans 0.3-0.9 (real.mp4: -0.27..0.61).
    assert max(spreads) < 0.25
