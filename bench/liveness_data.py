"""The liveness evaluation sets: every sample labelled, grouped into tracks and split by subject.

Why a module of its own: the split is the experiment. It is written down here
once, before any score is looked at, and both the tuning code and the report
read it from here, so a threshold can never be chosen on the reporting part by
accident.

Rule: a *subject* (one person, or one attack made from one person's photo) is
either tuning or reporting, never both.

- NUAA (8 subjects, live and printed-photo attacks of the same people): odd
  subject ids (0001, 0003, 0005, 0007) tune, even ids (0002, 0004, 0006, 0008)
  report. A NUAA *track* is one subject's photos of one capture session (the
  file name is ``subject_glasses_pos_session_frame``): frames of the same
  webcam session, in frame order. It stands in for a video track (NUAA ships
  sampled frames, not video).
- Silent-Face samples (image_F1/F2 spoofs, image_T1/T2 live; four subjects):
  tuning. F1 is a printed photo, F2 a photo shown on a screen.
- replay_video (one person live, then the same clip replayed on a laptop
  screen): reporting, so that the only screen-attack video is never tuned on.
  Tracks: the whole clip, and windows of ``TRACK_FRAMES`` consecutive frames.
- Genuine-only evidence (BPCER): CelebA and LFW identities alternate (sorted
  identity folders: even positions tune, odd report); the three public figures
  in faces/enroll, faces/probe and faces/group and the Hamilton clip report.
  These are photos of real people taken directly by a camera: bona fide
  presentations for the purpose of BPCER, though not captured at a kiosk.
- Extra public samples fetched under ``$LIVENESS_EXTRA`` (default
  /work/extra-data) are added where present, by the same subject rule.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["tune", "report"]
Attack = Literal["none", "print", "screen", "other"]

#: Frames per video track window (about one second at 30 fps, sampled every ``VIDEO_STEP``).
VIDEO_STEP = 3
TRACK_FRAMES = 10
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Sample:
    """One image (or one video frame) to score."""

    source: str  # dataset name
    subject: str  # person (or attacked person) id, unique across sources
    split: Split
    attack: Attack
    track: str  # frames that belong to one presentation, in order
    order: int  # position inside the track (frame number)
    path: Path
    frame: int = -1  # video frame index, -1 for a still image
    photo: bool = True  # stills are detected with the enrolment border, frames are not

    @property
    def key(self) -> str:
        return f"{self.path}#{self.frame}"


def _odd(subject: str) -> bool:
    return int(subject) % 2 == 1


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


NUAA_NAME = re.compile(r"^(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d+)\.jpg$")


def nuaa(root: Path) -> Iterator[Sample]:
    kinds: tuple[tuple[str, Attack], ...] = (("live", "none"), ("spoof_print", "print"))
    for kind, attack in kinds:
        for subject_dir in sorted((root / kind).iterdir()):
            subject = subject_dir.name
            split: Split = "tune" if _odd(subject) else "report"
            for path in _images(subject_dir):
                m = NUAA_NAME.match(path.name)
                if m is None:
                    raise ValueError(f"unexpected NUAA file name {path}")
                session, frame = m.group(4), int(m.group(5))
                yield Sample("nuaa", f"nuaa-{subject}", split, attack, f"nuaa-{kind}-{subject}-s{session}", frame, path)


def silentface(root: Path) -> Iterator[Sample]:
    named: dict[str, Attack] = {"image_F1.jpg": "print", "image_F2.jpg": "screen", "image_T1.jpg": "none"}
    for name, attack in named.items():
        yield Sample("silentface", f"sf-{name}", "tune", attack, f"sf-{name}", 0, root / name)
    t2 = root / "silentface_extra" / "image_T2.jpg"
    if t2.is_file():
        yield Sample("silentface", "sf-T2", "tune", "none", "sf-T2", 0, t2)


def video(
    path: Path, source: str, subject: str, split: Split, attack: Attack, step: int = VIDEO_STEP
) -> Iterator[Sample]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    for k, frame in enumerate(range(0, count, step)):
        track = f"{source}-{path.stem}-w{k // TRACK_FRAMES:03d}"
        yield Sample(source, subject, split, attack, track, frame, path, frame=frame, photo=False)


def identity_folders(root: Path, source: str, per_id: int) -> Iterator[Sample]:
    """Genuine-only photo folders laid out as identity/*.jpg; identities alternate between the splits."""
    for k, person in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        split: Split = "tune" if k % 2 == 0 else "report"
        for i, path in enumerate(_images(person)[:per_id]):
            yield Sample(source, f"{source}-{person.name}", split, "none", f"{source}-{person.name}", i, path)


def public_figures(faces: Path) -> Iterator[Sample]:
    for folder in ("enroll", "probe", "group"):
        base = faces / folder
        if not base.is_dir():
            continue
        paths = [p for p in sorted(base.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        for i, path in enumerate(paths):
            subject = path.parent.name if folder == "enroll" else path.stem
            yield Sample("faces", f"faces-{folder}-{subject}", "report", "none", f"faces-{folder}-{path.stem}", i, path)


def extra(root: Path) -> Iterator[Sample]:
    """Fetched public samples laid out as <set>/<live|print|screen|other>/<subject>/<files>; a hash of the subject
    decides the split ("other": an attack whose kind the source does not state).

    Videos (.mp4, .avi, .mov) are sampled like the replay clips.
    """
    if not root.is_dir():
        return
    for dataset in sorted(p for p in root.iterdir() if p.is_dir()):
        kinds: tuple[tuple[str, Attack], ...] = (
            ("live", "none"),
            ("print", "print"),
            ("screen", "screen"),
            ("other", "other"),
        )
        for kind, attack in kinds:
            base = dataset / kind
            if not base.is_dir():
                continue
            for subject_dir in sorted(p for p in base.iterdir() if p.is_dir()):
                subject = f"{dataset.name}-{subject_dir.name}"
                split: Split = "tune" if hashlib.sha256(subject.encode()).digest()[0] % 2 == 0 else "report"
                for path in sorted(subject_dir.iterdir()):
                    if path.suffix.lower() in IMAGE_SUFFIXES:
                        yield Sample(dataset.name, subject, split, attack, f"{subject}-{kind}", 0, path)
                    elif path.suffix.lower() in (".mp4", ".avi", ".mov"):
                        yield from video(path, dataset.name, subject, split, attack)


def all_samples(data: Path, extra_root: Path | None = None, per_id: int = 10) -> list[Sample]:
    media = data / "media"
    samples: list[Sample] = []
    samples += nuaa(media / "spoof" / "nuaa")
    samples += silentface(media / "spoof")
    replay = media / "spoof" / "replay_video"
    samples += video(replay / "real.mp4", "replay", "replay-person", "report", "none")
    samples += video(replay / "fake_replay.mp4", "replay", "replay-person", "report", "screen")
    samples += video(media / "video" / "short_hamilton_clip.mp4", "hamilton", "hamilton", "report", "none")
    samples += identity_folders(media / "faces" / "celeba", "celeba", per_id)
    samples += identity_folders(media / "faces" / "lfw_gray", "lfw", per_id)
    samples += public_figures(media / "faces")
    root = extra_root if extra_root is not None else Path(os.environ.get("LIVENESS_EXTRA", "/work/extra-data"))
    samples += extra(root / "liveness")
    subjects: dict[str, set[str]] = {}
    for s in samples:
        subjects.setdefault(s.subject, set()).add(s.split)
    mixed = [k for k, v in subjects.items() if len(v) > 1]
    if mixed:
        raise AssertionError(f"subjects in both splits: {mixed}")
    return samples
