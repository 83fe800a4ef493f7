"""Enrollment from photos and erasure: plain functions the CLI and (later) MQTT commands call.

A photo is accepted only with exactly one face that passes the quality gates
and the liveness check; every refusal names the photo and the reason. Erasure
removes the member from the gallery and, through hooks the delivery layer
registers, from every queued event that carries the member's id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from agent.identity.gallery import Consent, Gallery, GalleryError
from models.face.analyzer import FaceAnalyzer

logger = logging.getLogger(__name__)

#: A purge hook: given a member id, remove queued data carrying it; returns how many items it removed.
ErasureHook = Callable[[str], int]
_hooks: list[ErasureHook] = []
_hooks_lock = threading.Lock()

#: The refusal of a photo that is not an image at all (the CLI exits 65 for it).
UNREADABLE = "cannot read the image (missing, unreadable or not an image)"
#: Border added around enrollment photos: YuNet misses faces that fill the picture.
PHOTO_PAD = 0.25


class EnrollmentError(GalleryError):
    """No photo of the request was usable; ``refusals`` lists (photo, reason)."""

    def __init__(self, message: str, refusals: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.refusals = refusals


@dataclass
class PhotoVerdict:
    photo: str
    accepted: bool
    reason: str | None = None
    quality: float = 0.0
    liveness: float | None = None
    embedding: npt.NDArray[np.float32] | None = field(default=None, repr=False)


@dataclass
class EnrollResult:
    member_id: str
    enrolled: int
    verdicts: list[PhotoVerdict]


@dataclass
class EraseResult:
    member_id: str
    was_enrolled: bool
    queued_events_removed: int


def register_erasure_hook(hook: ErasureHook) -> None:
    """The delivery layer registers its outbox purge here; every erasure calls it."""
    with _hooks_lock:
        if hook not in _hooks:
            _hooks.append(hook)


def unregister_erasure_hook(hook: ErasureHook) -> None:
    with _hooks_lock:
        if hook in _hooks:
            _hooks.remove(hook)


def judge_image(
    analyzer: FaceAnalyzer, image: npt.NDArray[np.uint8] | None, name: str, min_liveness: float
) -> PhotoVerdict:
    """Whether one photo may become a template, and why not."""
    if image is None or image.size == 0:
        return PhotoVerdict(name, False, UNREADABLE)
    observations = analyzer.analyse(image, pad=PHOTO_PAD)
    big = [o for o in observations if o.detection.size >= analyzer.thresholds.min_face_px]
    if not observations:
        return PhotoVerdict(name, False, "no face found")
    if len(big) > 1:
        return PhotoVerdict(name, False, f"{len(big)} faces found; a photo must show the member alone")
    face = big[0] if big else observations[0]
    if not face.quality.ok:
        return PhotoVerdict(name, False, f"low quality: {face.quality.reason}", face.quality.score)
    assert face.liveness is not None and face.embedding is not None
    if face.liveness < min_liveness:
        return PhotoVerdict(
            name,
            False,
            f"looks like a spoof (liveness {face.liveness:.2f} < {min_liveness:.2f})",
            face.quality.score,
            face.liveness,
        )
    return PhotoVerdict(name, True, None, face.quality.score, face.liveness, face.embedding)


def enroll_images(
    gallery: Gallery,
    analyzer: FaceAnalyzer,
    member_id: str,
    consent: Consent,
    images: Sequence[tuple[str, npt.NDArray[np.uint8] | None]],
    min_liveness: float,
) -> EnrollResult:
    """Enrol the accepted photos; raise :class:`EnrollmentError` when none is usable."""
    verdicts = [judge_image(analyzer, image, name, min_liveness) for name, image in images]
    accepted = [v for v in verdicts if v.accepted and v.embedding is not None]
    refusals = [(v.photo, v.reason or "") for v in verdicts if not v.accepted]
    if not accepted:
        detail = "; ".join(f"{p}: {r}" for p, r in refusals) or "no photos given"
        raise EnrollmentError(f"member {member_id!r} not enrolled: {detail}", refusals)
    n = gallery.enroll(
        member_id, [v.embedding for v in accepted if v.embedding is not None], [v.quality for v in accepted], consent
    )
    logger.info("member enrolled with %s templates (%s photos refused)", n, len(refusals))
    return EnrollResult(member_id, n, verdicts)


def enroll_files(
    gallery: Gallery,
    analyzer: FaceAnalyzer,
    member_id: str,
    consent: Consent,
    paths: Sequence[str],
    min_liveness: float,
) -> EnrollResult:
    images = [(p, read_image(p)) for p in paths]
    return enroll_images(gallery, analyzer, member_id, consent, images, min_liveness)


def read_image(path: str) -> npt.NDArray[np.uint8] | None:
    """A BGR image from a file, or None when it is missing or not an image (the caller names the reason)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    return None if image is None else np.asarray(image, dtype=np.uint8)


def decode_image(data: bytes) -> npt.NDArray[np.uint8] | None:
    """A BGR image from encoded JPEG/PNG bytes, or None when they are not an image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    return None if image is None else np.asarray(image, dtype=np.uint8)


def erase_member(gallery: Gallery, member_id: str, reason: str = "request") -> EraseResult:
    """Remove the member everywhere: gallery (templates, consent) and queued events via the hooks."""
    was = gallery.erase(member_id, reason)
    removed = 0
    with _hooks_lock:
        hooks = list(_hooks)
    for hook in hooks:
        removed += hook(member_id)
    logger.info("erasure done: enrolled=%s, queued events removed=%s", was, removed)
    return EraseResult(member_id, was, removed)


def enforce_retention(gallery: Gallery, now: float | None = None) -> list[str]:
    """Erase every member whose consent has expired, like a request would (hooks included); the ids erased."""
    expired = gallery.expired_members(now)
    for member_id in expired:
        erase_member(gallery, member_id, reason="consent expired")
    return expired
