"""At scale on real data (slow): CelebA and LFW rank-1 and false accepts, NUAA and replay-video liveness, pipeline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.pipelines.face.events import ShopperIdentified, SpoofSuspected, VisitorSeen
from agent.pipelines.face.tracker import DecisionSettings, FaceTracker
from models.face.analyzer import FaceAnalyzer
from models.face.match import GalleryMatrix, best, match
from tests.conftest import require_data
from tests.face.conftest import as_bgr, imread

pytestmark = pytest.mark.slow
THRESHOLD, MARGIN, LIVE = 0.40, 0.05, 0.5


def _embed(analyzer: FaceAnalyzer, path: Path) -> np.ndarray | None:
    faces = analyzer.analyse(imread(str(path)), pad=0.25, max_faces=1, check_liveness=False)
    return faces[0].embedding if faces and faces[0].embedding is not None else None


def _open_set(
    analyzer: FaceAnalyzer, root: Path, enrol_per_id: int, max_ids: int, per_id: int
) -> tuple[float, float, float, int, int]:
    """Enrol ``enrol_per_id`` photos of every other identity, probe with the rest (``per_id`` photos each at most);
    the other identities are strangers. ``max_ids`` and ``per_id`` keep the run within the suite's time budget."""
    ids = sorted(p for p in root.iterdir() if p.is_dir())[:max_ids]
    enrolled, strangers = ids[::2], ids[1::2]
    vectors, owners, probes = [], [], []
    for k, person in enumerate(enrolled):
        photos = sorted(person.glob("*.jpg"))[:per_id]
        for photo in photos[:enrol_per_id]:
            if (e := _embed(analyzer, photo)) is not None:
                vectors.append(e)
                owners.append(k)
        probes += [(photo, person.name) for photo in photos[enrol_per_id:]]
    gallery = GalleryMatrix(np.stack(vectors), np.array(owners, np.int32), tuple(p.name for p in enrolled))
    rank1 = accepted = genuine = 0
    for photo, name in probes:
        if (e := _embed(analyzer, photo)) is None:
            continue
        genuine += 1
        rank1 += best(e, gallery).member_id == name
        found = match(e, gallery, THRESHOLD, MARGIN)
        accepted += found is not None and found.member_id == name
    false_accepts = impostors = 0
    for person in strangers:
        for photo in sorted(person.glob("*.jpg"))[:per_id]:
            if (e := _embed(analyzer, photo)) is not None:
                impostors += 1
                false_accepts += match(e, gallery, THRESHOLD, MARGIN) is not None
    print(
        f"\n{root.name}: rank-1 {rank1}/{genuine}, accepted {accepted}/{genuine},"
        f" false accepts {false_accepts}/{impostors}"
    )
    return rank1 / genuine, accepted / genuine, false_accepts / impostors, genuine, impostors


def test_celeba_open_set(analyzer: FaceAnalyzer) -> None:
    rank1, tar, far, genuine, impostors = _open_set(analyzer, require_data("media/faces/celeba"), 3, 50, 7)
    # measured (2-core VM) on this subset (50 ids x 7): rank-1 94/95, accepted 91/95, false accepts 5/167;
    # (all 50 ids x 10: 163/167, 160/167, 5/239). Limits: the measured values with a small margin.
    assert genuine >= 90 and impostors >= 160
    assert rank1 >= 0.95 and tar >= 0.92 and far <= 0.04


def test_lfw_gray_open_set(analyzer: FaceAnalyzer) -> None:
    rank1, tar, far, genuine, impostors = _open_set(analyzer, require_data("media/faces/lfw_gray"), 2, 60, 5)
    # measured on this subset (60 ids): rank-1 89/90, accepted 89/90, false accepts 1/150
    # (all 120 ids: 179/180, 179/180, 2/298)
    assert genuine >= 85 and impostors >= 145
    assert rank1 >= 0.96 and tar >= 0.95 and far <= 0.02


def test_nuaa_print_attacks(analyzer: FaceAnalyzer) -> None:
    """ISO/IEC 30107-3 error rates against NUAA's own labels, on the reporting subjects only.

    The split is bench/liveness_data.py's: odd subject ids tune, even ids (0002, 0004, 0006, 0008) report, so
    nothing here was tuned on these people. A track is one subject's capture session (photos in frame order),
    decided like the face tracker: mean liveness of its first 3 usable frames against LIVE.
    """
    root = require_data("media/spoof/nuaa")
    photo: dict[str, list[float]] = {"live": [], "spoof_print": []}
    sessions: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for kind, values in photo.items():
        for subject in sorted((root / kind).iterdir()):
            if int(subject.name) % 2 == 1:
                continue  # tuning subject
            for path in sorted(subject.glob("*.jpg")):
                faces = analyzer.analyse(imread(str(path)), pad=0.25, max_faces=1)
                if faces and faces[0].liveness is not None:
                    values.append(faces[0].liveness)
                    _, _, _, session, frame = path.stem.split("_")
                    sessions.setdefault((kind, f"{subject.name}-{session}"), []).append((int(frame), faces[0].liveness))
    live, spoof = np.array(photo["live"]), np.array(photo["spoof_print"])
    apcer, bpcer = float(np.mean(spoof >= LIVE)), float(np.mean(live < LIVE))
    tracks = {
        k: float(np.mean([v for _, v in sorted(frames)[:3]])) for k, frames in sessions.items() if len(frames) >= 3
    }
    track_apcer = np.mean([v >= LIVE for (kind, _), v in tracks.items() if kind == "spoof_print"])
    track_bpcer = np.mean([v < LIVE for (kind, _), v in tracks.items() if kind == "live"])
    print(
        f"\nNUAA reporting subjects: per photo APCER(print) {apcer:.3f} (n={spoof.size}), BPCER {bpcer:.3f}"
        f" (n={live.size}); per session track APCER {track_apcer:.3f}, BPCER {track_bpcer:.3f} (n={len(tracks)})"
    )
    # measured (2-core VM): per photo APCER 0.062 (5/80), BPCER 0.275 (22/80); session tracks APCER 1/12,
    # BPCER 2/8.
    # Floors: the measured rates with a small margin. The goal (APCER <= 0.05, BPCER <= 0.05) is NOT met by
    # the passive models on NUAA's tight face crops (docs/liveness.md); the head-turn check covers prints.
    assert live.size >= 75 and spoof.size >= 75
    assert apcer <= 0.10 and bpcer <= 0.35
    assert track_apcer <= 0.17 and track_bpcer <= 0.30


def _run_video(
    analyzer: FaceAnalyzer, path: Path, enrolled: GalleryMatrix, step: int = 10, max_frames: int = 300
) -> tuple[list[object], float]:
    tracker = FaceTracker(
        "cam", DecisionSettings(min_frames=3, liveness_threshold=LIVE), lambda e: match(e, enrolled, THRESHOLD, MARGIN)
    )
    cap = cv2.VideoCapture(str(path))
    events: list[object] = []
    live: list[float] = []
    index = 0
    while index < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        if index % step == 0:
            faces = analyzer.analyse(as_bgr(frame))
            live += [f.liveness for f in faces if f.liveness is not None]
            events += tracker.update(faces, index / 30.0, 0.0)
        index += 1
    cap.release()
    return events, float(np.mean(live)) if live else 0.0


def test_replay_video_is_refused_and_the_live_clip_enrolled(analyzer: FaceAnalyzer) -> None:
    """The member enrols from three frames of the clip's last seconds (15-20 s) and is probed on its first 10 s
    (every 10th of frames 0-299): enrolment and probe frames are 5 s apart, never the same frame. Enrolment from
    photos with probes on other photos (a member's photos replayed as a track) is in test_face_open_set.py."""
    root = require_data("media/spoof/replay_video")
    cap = cv2.VideoCapture(str(root / "real.mp4"))
    templates = []
    for index in (450, 525, 600):
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        _, frame = cap.read()
        faces = analyzer.analyse(as_bgr(frame))
        if faces and faces[0].embedding is not None:
            templates.append(faces[0].embedding)
    cap.release()
    assert templates, "no enrolment frame of the live clip passed the gates"
    gallery = GalleryMatrix(np.stack(templates), np.zeros(len(templates), np.int32), ("m-live",))
    real_events, real_live = _run_video(analyzer, root / "real.mp4", gallery)
    fake_events, fake_live = _run_video(analyzer, root / "fake_replay.mp4", gallery)
    print(f"\nreplay: mean liveness live {real_live:.3f}, replay {fake_live:.3f}; events {real_events} / {fake_events}")
    # measured (every 10th of the first 300 frames): mean liveness live 0.894, replay 0.000
    assert real_live >= 0.8 and fake_live <= 0.05
    assert any(isinstance(e, ShopperIdentified) and e.member_id == "m-live" for e in real_events)
    assert not any(isinstance(e, ShopperIdentified) for e in fake_events)
    assert any(isinstance(e, SpoofSuspected | VisitorSeen) for e in fake_events)
