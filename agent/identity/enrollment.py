"""Enrollment from photos and erasure: plain functions the CLI and (later) MQTT commands call.

A photo is accepted only with exactly one face that passes the quality gates
and the liveness check; every refusal names the photo and the reason. Erasure
removes the member from the gallery and, through hooks the delivery layer
registers, from every queued event that carries the member's id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from agent.identity import sync
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
    mirrored: npt.NDArray[np.float32] | None = field(default=None, repr=False)


@dataclass
class EnrollResult:
    member_id: str
    enrolled: int  # templates stored
    verdicts: list[PhotoVerdict]
    photos: int = 0  # photos accepted


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
    mirrored = analyzer.mirrored_embedding(image, face.detection)
    return PhotoVerdict(name, True, None, face.quality.score, face.liveness, face.embedding, mirrored)


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
    templates: list[npt.NDArray[np.float32]] = []
    qualities: list[float] = []
    for v in accepted:  # each photo as taken and mirrored: two views of one face
        views = [e for e in (v.embedding, v.mirrored) if e is not None]
        templates += views
        qualities += [v.quality] * len(views)
    n = gallery.enroll(member_id, templates, qualities, consent)
    shared = sync.recorder()
    if shared is not None:
        record = sync.SharedConsent(
            consent.reference, consent.scope, consent.coverage, consent.granted_at or time.time(),  # type: ignore[arg-type]
            consent.expires_at, consent.guardian,
        )  # fmt: skip
        shared.enrolled(member_id, record, gallery.model, templates)
    logger.info("member enrolled with %s templates from %s photos (%s refused)", n, len(accepted), len(refusals))
    return EnrollResult(member_id, n, verdicts, len(accepted))


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
    """A BGR image from a JPEG or PNG file, or None when it is missing or not one (the caller names the reason)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return decode_image(data)


def decode_image(data: bytes) -> npt.NDArray[np.uint8] | None:
    """A BGR image from JPEG or PNG bytes, or None when they are not one or too big to decode safely.

    The size is read from the header before anything is decoded (a 16,000 x 16,000 PNG is 1 MB on the wire and
    768 MB decoded): JPEGs are decoded at 1/2, 1/4 or 1/8 scale so the longer side stays near
    ``DECODE_MAX_SIDE`` (at most); PNGs (which decode at full size) above ``PNG_MAX_PIXELS`` are refused.
    """
    size = image_size(data)
    if size is None:
        return None
    kind, width, height = size
    if width * height > (PNG_MAX_PIXELS if kind == "png" else JPEG_MAX_PIXELS):
        logger.warning("refused a %dx%d %s image: too large to decode safely", width, height, kind)
        return None
    flag = cv2.IMREAD_COLOR
    if kind == "jpeg" and max(width, height) > DECODE_MAX_SIDE:
        reductions = ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))
        flag = next((f for k, f in reductions if max(width, height) / k <= DECODE_MAX_SIDE), reductions[-1][1])
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    return None if image is None else np.asarray(image, dtype=np.uint8)


#: Decoding limits for photos from outside (commands, files): see :func:`decode_image`.
DECODE_MAX_SIDE = 2048
JPEG_MAX_PIXELS = 64_000_000
PNG_MAX_PIXELS = 2048 * 2048
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """("jpeg" | "png", width, height) read from the header, or None when ``data`` is neither."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF:
            height, width = int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
            return ("jpeg", width, height) if width and height else None
        if length < 2:
            return None
        i += 2 + length
    return None


def erase_member(
    gallery: Gallery | None, member_id: str, reason: str = "request", announce: bool = True
) -> EraseResult:
    """Remove the member everywhere: gallery (templates, consent) and queued events via the hooks. ``gallery``
    is None on a terminal that never had one (no face pipeline): the member's queued events still go.

    With store sharing on (``identity.sync``), an erasure made here is also announced so every terminal of the
    store erases the member; ``announce=False`` for an erasure that came from elsewhere (the hub's).
    """
    was = gallery.erase(member_id, reason) if gallery is not None else False
    removed = 0
    with _hooks_lock:
        hooks = list(_hooks)
    for hook in hooks:
        removed += hook(member_id)
    shared = sync.recorder()
    if shared is not None:
        if announce:
            shared.erased(member_id, reason)
        else:
            shared.journal.forget(sync.member_ref(shared.store_id, member_id))
    logger.info("erasure done: enrolled=%s, queued events removed=%s", was, removed)
    return EraseResult(member_id, was, removed)


def enforce_retention(gallery: Gallery, now: float | None = None) -> list[str]:
    """Erase every member whose consent has expired, like a request would (hooks included); the ids erased."""
    expired = gallery.expired_members(now)
    for member_id in expired:
        erase_member(gallery, member_id, reason="consent expired")
    return expired
