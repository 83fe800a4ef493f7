"""Open-set identification measured on identities that tuned nothing (slow): floors, not exact figures.

The settings under test were tuned on the CelebA tuning split of
``bench/face_eval.py`` (seed 15); LFW played no part in tuning, so it is an
independent reference. Enrolment goes through the agent's own
``judge_image`` (one face, gates, liveness) and identification through
:func:`models.face.match.match`, as ``store-agent identify`` does.
Photos of one person fed to the real :class:`agent.pipelines.face.tracker.FaceTracker`
as frames stand in for a track: enrolment photos and probe photos are
always different photos (the replay-video test used to enrol and probe from
one clip).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from agent.identity.enrollment import PHOTO_PAD, judge_image
from agent.pipelines.face.events import ShopperIdentified
from agent.pipelines.face.tracker import DecisionSettings, FaceTracker
from models.face.analyzer import FaceAnalyzer
from models.face.match import GalleryMatrix, match
from models.face.quality import QualityThresholds
from tests.conftest import require_data, require_model
from tests.face.conftest import imread

pytestmark = pytest.mark.slow

#: Tuned on the CelebA tuning split (bench/face_eval.py, FPIR 1e-3 at 50 members): see docs/face-eval.md.
#: One photo: 0.47; a track's mean embedding (5 frames): 0.50.
THRESHOLD, TRACK_THRESHOLD, MARGIN, LIVE = 0.47, 0.50, 0.05, 0.5
TRACK_FRAMES = 5
GATES = QualityThresholds(min_face_px=32.0, max_yaw=1.0)
MEMBERS, ENROL = 50, 3


@pytest.fixture(scope="module")
def tuned(models_dir: Path) -> FaceAnalyzer:
    """The shipped models with the tuned gates (a second analyzer: the session one keeps the shipped gates)."""
    require_model(models_dir, "antispoof_minifasnet_v2.onnx")
    return FaceAnalyzer.load(models_dir, thresholds=GATES)


def _people(root: Path) -> list[tuple[str, list[Path]]]:
    return [(p.name, sorted(p.glob("*.jpg"))) for p in sorted(root.iterdir()) if p.is_dir()]


def _enrol(
    analyzer: FaceAnalyzer, people: list[tuple[str, list[Path]]], live: float = LIVE
) -> tuple[GalleryMatrix, list[list[Path]]]:
    """Each person enrols the first ENROL photos the enrolment judge accepts; the rest are their probes."""
    vectors, owners, probes = [], [], []
    for k, (_, photos) in enumerate(people):
        accepted, used = 0, 0
        for photo in photos:
            if accepted == ENROL:
                break
            used += 1
            verdict = judge_image(analyzer, imread(photo), str(photo), live)
            if verdict.accepted and verdict.embedding is not None:
                vectors.append(verdict.embedding)
                owners.append(k)
                accepted += 1
        probes.append(photos[used:])
    return GalleryMatrix(np.stack(vectors), np.array(owners, np.int32), tuple(n for n, _ in people)), probes


def _identify(analyzer: FaceAnalyzer, photo: Path, gallery: GalleryMatrix, live: float = LIVE) -> list[str | None]:
    """What ``store-agent identify`` reports per face: the member, or None (gated, not live, below threshold)."""
    out: list[str | None] = []
    for face in analyzer.analyse(imread(photo), pad=PHOTO_PAD):
        if face.embedding is None or face.liveness is None or face.liveness < live:
            out.append(None)
            continue
        found = match(face.embedding, gallery, THRESHOLD, MARGIN)
        out.append(found.member_id if found else None)
    return out


def test_lfw_open_set_with_the_tuned_settings(tuned: FaceAnalyzer) -> None:
    """LFW's grey tight crops all read as prints to MiniFASNet: liveness is off here, recognition is measured."""
    people = _people(require_data("media/faces/lfw_gray"))
    members, strangers = people[:MEMBERS], people[MEMBERS:]
    gallery, probes = _enrol(tuned, members, live=0.0)
    genuine = identified = wrong = 0
    for (name, _), photos in zip(members, probes, strict=True):
        for photo in photos:
            faces = _identify(tuned, photo, gallery, live=0.0)
            genuine += 1
            identified += bool(faces) and faces[0] == name
            wrong += any(f is not None and f != name for f in faces)
    impostor = accepted = 0
    for _, photos in strangers:
        for photo in photos:
            impostor += 1
            accepted += any(f is not None for f in _identify(tuned, photo, gallery, live=0.0))
    print(
        f"\nLFW grey, {len(gallery.members)} members x {ENROL} photos: identified {identified}/{genuine},"
        f" wrong member {wrong}, impostor photos accepted {accepted}/{impostor}"
    )
    assert genuine >= 90 and impostor >= 300
    # measured (2-core VM): identified 97/100, wrong member 0, impostor photos accepted 0/350
    # (shipped settings, threshold 0.40 and the yaw and 48 px gates, on the same protocol: see docs/face-eval.md)
    assert identified / genuine >= 0.92 and wrong == 0 and accepted / impostor <= 1 / 350


def _as_frame(image: npt.NDArray[np.uint8], analyzer: FaceAnalyzer) -> npt.NDArray[np.uint8] | None:
    """The photo's main face moved to the same place of a 640x480 frame (eye distance 60 px), as a camera sees a
    person standing still: the tracker then follows one track across photos."""
    faces = analyzer.analyse(image, pad=PHOTO_PAD, max_faces=1, check_liveness=False)
    if not faces:
        return None
    lm = faces[0].detection.landmarks.astype(np.float64)
    eyes = (lm[0] + lm[1]) / 2
    scale = 60.0 / max(float(np.hypot(*(lm[1] - lm[0]))), 1.0)
    m = np.array([[scale, 0, 320 - scale * eyes[0]], [0, scale, 200 - scale * eyes[1]]])
    return np.asarray(cv2.warpAffine(image, m, (640, 480), borderMode=cv2.BORDER_REPLICATE), np.uint8)


def test_member_photos_as_a_track_identify_the_member(tuned: FaceAnalyzer) -> None:
    """CelebA: members enrol from 3 photos; up to 7 *other* photos each are replayed as one track through the tracker,
    which decides once 5 of them passed the gates (the settings recommended in docs/face-eval.md). The shared
    CelebA identities are a subset of those bench/face_eval.py splits, about half of them in its tuning part:
    this checks the tracker wiring at the tuned settings; the LFW test above is the independent reference."""
    people = _people(require_data("media/faces/celeba"))
    members, strangers = people[:25], people[25:]
    gallery, probes = _enrol(tuned, members)

    def decide(photos: list[Path]) -> list[object]:
        tracker = FaceTracker(
            "cam",
            DecisionSettings(min_frames=3, liveness_threshold=LIVE),
            lambda e: match(e, gallery, THRESHOLD, MARGIN),
        )
        events: list[object] = []
        for i, photo in enumerate(photos):
            frame = _as_frame(imread(photo), tuned)
            if frame is not None:
                events += tracker.update(tuned.analyse(frame), i * 0.2, 0.0)
        return events

    right = tracks = 0
    for (name, _), photos in zip(members, probes, strict=True):
        if len(photos) < TRACK_FRAMES:
            continue
        tracks += 1
        found = [e.member_id for e in decide(photos[:7]) if isinstance(e, ShopperIdentified)]
        assert set(found) <= {name}, f"{name}'s track identified as {found}"
        right += bool(found)
    false = sum(any(isinstance(e, ShopperIdentified) for e in decide(photos[:5])) for _, photos in strangers)
    print(f"\nCelebA tracks of 5-7 photos: members identified {right}/{tracks}, strangers identified {false}/25")
    # measured (2-core VM): members identified 25/25, strangers 0/25
    assert tracks >= 20 and right / tracks >= 0.88 and false == 0
