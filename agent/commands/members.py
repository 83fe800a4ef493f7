"""Commands for the member gallery: ``enroll-member``, ``erase-member``, ``list-members``.

They run on the daemon's command thread and use the running face pipeline's
gallery when there is one (so a new member is matched from the next frame),
or open the terminal's gallery from the config when the face pipeline is off:
erasure must work whatever is enabled. Requests look like::

    cmd/enroll-member {"request_id": "r1", "member_id": "M-1",
                       "consent": {"reference": "form-123", "expires": "2027-01-31", "guardian": false,
                                   "coverage": "store"},
                       "images": ["<base64 JPEG or PNG>", ...]}
    cmd/enroll-member {"request_id": "r1", "member_id": "M-1", "consent": {...}, "camera": "kiosk", "frames": 3}
    cmd/erase-member  {"request_id": "r2", "member_id": "M-1"}
    cmd/erase-member  {"request_id": "r2", "member_ref": "<32 hex>", "scope": "terminal"}
    cmd/list-members  {"request_id": "r3"}

A refused photo is named by its index with the reason; nothing in a reply
carries an image or a template. With ``camera`` (a kiosk where the member
opts in), the next ``frames`` frames of that camera's running face pipeline are
the photos, each judged like an uploaded one (one face, quality, liveness).
``consent.coverage`` says where the consent applies: ``terminal`` (the default), ``store`` or ``chain``; with
``identity.sync`` on, a store or chain consent shares the member with the store's other terminals.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.commands.base import Command, CommandFailed, CommandHost, unknown_args
from agent.identity.enrollment import EnrollmentError, decode_image, enroll_images, erase_member
from agent.identity.gallery import Consent, Gallery, GalleryError
from agent.identity.keys import GalleryKeyError
from agent.identity.sync import COVERAGES, known_member, member_ref
from agent.pipelines.face.resources import gallery_path, load_analyzer, open_gallery
from agent.pipelines.face.settings import FaceSettings
from agent.pipelines.shared import FrameTap
from models.face.active_liveness import Direction, HeadTurnChallenge, HeadTurnSettings, Outcome, signed_turn

logger = logging.getLogger(__name__)

MEMBER_ID_MAX = 128
MAX_IMAGES = 10
#: Camera enrolment: how long to wait for the requested number of new frames.
CAMERA_WAIT_S = 5.0


@contextmanager
def _gallery(host: CommandHost) -> Iterator[Gallery]:
    """The running pipeline's gallery (shared), else one opened for this command and closed after it."""
    with _existing_gallery(host, create=True) as gallery:
        assert gallery is not None
        yield gallery


@contextmanager
def _existing_gallery(host: CommandHost, create: bool = False) -> Iterator[Gallery | None]:
    """As ``_gallery``; None where this terminal has no gallery file and ``create`` is off (nobody was ever
    enrolled here: an erasure needs no gallery key then)."""
    shared = host.shared()
    if shared is not None and shared.gallery is not None:
        yield shared.gallery
        return
    config = host.loaded.config
    if not create and not gallery_path(Path(config.storage.state_dir)).exists():
        yield None
        return
    try:
        gallery = open_gallery(config.pipelines.settings(FaceSettings), Path(config.storage.state_dir))
    except (GalleryError, GalleryKeyError) as exc:
        raise CommandFailed(f"cannot open the member gallery: {exc}") from exc
    try:
        yield gallery
    finally:
        gallery.close()


def _member_id(args: dict[str, Any]) -> str:
    member_id = args.get("member_id")
    if not isinstance(member_id, str) or not member_id.strip() or len(member_id) > MEMBER_ID_MAX:
        raise CommandFailed(f"member_id must be a non-empty string of at most {MEMBER_ID_MAX} characters")
    return member_id


def _consent(raw: Any) -> Consent:
    if not isinstance(raw, dict) or not isinstance(raw.get("reference"), str) or not raw["reference"].strip():
        raise CommandFailed('consent must be an object with a "reference" to the signed consent form')
    unknown_args(raw, {"reference", "scope", "expires", "guardian", "coverage"})
    expires = raw.get("expires")
    expires_at = None
    if expires is not None:
        try:
            expires_at = datetime.strptime(str(expires), "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            raise CommandFailed(f"consent.expires must be a date YYYY-MM-DD, got {expires!r}") from None
    scope = raw.get("scope", "identification")
    guardian = raw.get("guardian", False)
    if not isinstance(scope, str) or not isinstance(guardian, bool):
        raise CommandFailed("consent.scope must be a string and consent.guardian true or false")
    coverage = raw.get("coverage", "terminal")
    if coverage not in COVERAGES:
        raise CommandFailed(f"consent.coverage must be one of {', '.join(COVERAGES)} (where the consent applies)")
    return Consent(raw["reference"], scope, 0.0, expires_at, guardian, coverage)


#: A few full-resolution photos in base64 (the default command limit is 64 KiB).
ENROLL_MAX_BYTES = 8 * 1024 * 1024


def _enroll_member(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    unknown_args(args, {"member_id", "consent", "images", "camera", "frames", "head_turn"})
    member_id = _member_id(args)
    consent = _consent(args.get("consent"))
    if ("camera" in args) == ("images" in args):
        raise CommandFailed('give either "images" (base64 photos) or "camera" (enrol from that camera\'s next frames)')
    decoded = _camera_frames(host, args) if "camera" in args else _decoded_images(args.get("images"))
    config = host.loaded.config
    face = config.pipelines.settings(FaceSettings)
    with _gallery(host) as gallery:
        analyzer = load_analyzer(face, config.models.options())
        try:
            result = enroll_images(gallery, analyzer, member_id, consent, decoded, face.liveness_threshold)
        except EnrollmentError as exc:
            raise CommandFailed(str(exc)) from exc
        return {
            "member_id": member_id,
            "enrolled": result.enrolled,
            "photos": result.photos,
            "images": [
                {"image": i, "accepted": v.accepted, **({"reason": v.reason} if v.reason else {})}
                for i, v in enumerate(result.verdicts)
            ],
        }


def _decoded_images(images: Any) -> list[tuple[str, npt.NDArray[np.uint8] | None]]:
    if not isinstance(images, list) or not images or len(images) > MAX_IMAGES:
        raise CommandFailed(f"images must be a list of 1 to {MAX_IMAGES} base64-encoded JPEG or PNG photos")
    decoded = []
    for i, text in enumerate(images):
        try:
            data = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
        except (binascii.Error, ValueError):
            data = b""
        decoded.append((f"image {i}", decode_image(data)))
    return decoded


def _camera_frames(host: CommandHost, args: dict[str, Any]) -> list[tuple[str, npt.NDArray[np.uint8] | None]]:
    camera, count = args.get("camera"), args.get("frames", 3)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_IMAGES:
        raise CommandFailed(f"frames must be an integer from 1 to {MAX_IMAGES}")
    face = host.loaded.config.pipelines.settings(FaceSettings)
    kiosks = face.kiosk_cameras
    if camera not in kiosks:
        raise CommandFailed(
            f"camera {camera!r} is not an enrolment kiosk (pipelines.face.kiosk_cameras: {', '.join(kiosks) or 'none'})"
        )
    shared = host.shared()
    running = shared.devices.sources(face.cameras, "camera") if shared is not None and face.enabled else []
    if shared is None or camera not in running:
        raise CommandFailed(
            f"camera {camera!r} has no running face pipeline (face cameras: {', '.join(running) or 'none'})"
        )
    frames = shared.frames
    if face.kiosk_head_turn:
        return _head_turn_frames(host, frames, str(camera), _head_turn_steps(args.get("head_turn")), count)
    images = frames.collect(str(camera), count, CAMERA_WAIT_S)
    if not images:
        raise CommandFailed(f"camera {camera!r} delivered no frame within {CAMERA_WAIT_S:.0f} s")
    return [(f"frame {i}", image) for i, image in enumerate(images)]


def _head_turn_steps(raw: Any) -> list[Direction]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= 4 or any(s not in ("left", "right") for s in raw):
        raise CommandFailed(
            'head_turn must list the 1 to 4 turns the kiosk prompted, e.g. ["left", "right"] (the kiosk draws the '
            "order at random for each attempt: pipelines.face.kiosk_head_turn)"
        )
    steps: list[Direction] = raw
    return steps


def _head_turn_frames(
    host: CommandHost, frames: FrameTap, camera: str, steps: list[Direction], count: int
) -> list[tuple[str, npt.NDArray[np.uint8] | None]]:
    """The member's frontal frames from a head-turn check that passed on this camera's live frames."""
    config = host.loaded.config
    face = config.pipelines.settings(FaceSettings)
    analyzer = load_analyzer(face, config.models.options())
    settings = HeadTurnSettings(time_limit_s=face.head_turn_time_limit_s)
    challenge: HeadTurnChallenge | None = None
    frontal: list[tuple[float, npt.NDArray[np.uint8]]] = []
    for captured, image in frames.stream(camera, face.head_turn_time_limit_s + CAMERA_WAIT_S):
        challenge = challenge or HeadTurnChallenge(steps, captured, settings)
        faces = analyzer.analyse(image, check_liveness=False)
        landmarks = faces[0].detection.landmarks if faces else None
        verdict = challenge.update(captured, landmarks)
        if landmarks is not None and faces[0].quality.ok and abs(signed_turn(landmarks)) <= settings.frontal_offset:
            frontal.append((faces[0].quality.score, image))
        if verdict.outcome is Outcome.FAILED:
            raise CommandFailed(f"head-turn check failed: {verdict.reason}; nobody enrolled")
        if verdict.outcome is Outcome.PASSED:
            best = sorted(frontal, key=lambda f: -f[0])[:count]
            logger.info(
                "head-turn check passed at %s (%d turns); enrolling from %d frames", camera, len(steps), len(best)
            )
            return [(f"frame {i}", image) for i, (_, image) in enumerate(best)]
    reason = "no frame" if challenge is None else challenge.verdict.reason or "not finished"
    raise CommandFailed(f"head-turn check did not finish within {face.head_turn_time_limit_s:.0f} s ({reason})")


def _erase_member(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    """Erase by ``member_id`` (or by ``member_ref`` where only the reference is known). With ``identity.sync`` on,
    ``scope: store`` (the default) also announces the erasure so the hub erases the member on every terminal of
    the store; the hub's own erasure commands say ``scope: terminal``."""
    unknown_args(args, {"member_id", "member_ref", "scope"})
    scope = args.get("scope", "store")
    if scope not in ("store", "terminal"):
        raise CommandFailed(f'scope must be "store" or "terminal", got {scope!r}')
    if ("member_id" in args) == ("member_ref" in args):
        raise CommandFailed('give either "member_id" or "member_ref" (32 hex digits, as member.erased names it)')
    store_id = host.loaded.config.store.id
    with _existing_gallery(host) as gallery:
        if "member_ref" in args:
            ref = args["member_ref"]
            if not isinstance(ref, str) or not re.fullmatch(r"[0-9a-f]{32}", ref):
                raise CommandFailed("member_ref must be 32 lower-case hex digits")
            members = gallery.members() if gallery is not None else []
            found = [m.member_id for m in members if member_ref(store_id, m.member_id) == ref]
            member_id = found[0] if found else known_member(ref)
        else:
            member_id = _member_id(args)
            ref = member_ref(store_id, member_id)
        if member_id is None:  # nobody here by that reference: nothing of theirs to remove
            return {"member_ref": ref, "was_enrolled": False, "queued_events_removed": 0}
        result = erase_member(gallery, member_id, reason="mqtt command", announce=scope == "store")
    reply = {
        "member_ref": ref,
        "was_enrolled": result.was_enrolled,
        "queued_events_removed": result.queued_events_removed,
    }
    return {"member_id": member_id, **reply} if "member_id" in args else reply


def _list_members(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    unknown_args(args, set())
    with _gallery(host) as gallery:
        members = gallery.members()
    return {
        "members": [
            {
                "member_id": m.member_id,
                "templates": m.templates,
                "consent_ref": m.consent.reference,
                "scope": m.consent.scope,
                "expires_at": m.consent.expires_at,
                "guardian": m.consent.guardian,
            }
            for m in members
        ]
    }


ENROLL_MEMBER = Command(
    "enroll-member",
    "Enrol a consenting member from base64 JPEG/PNG photos; each photo accepted or refused.",
    _enroll_member,
    max_bytes=ENROLL_MAX_BYTES,
    time_limit_s=120.0,
)
ERASE_MEMBER = Command(
    "erase-member", "Erase a member: templates, consent and every queued event carrying their id.", _erase_member
)
LIST_MEMBERS = Command(
    "list-members", "Enrolled members with their template count and consent (no templates).", _list_members
)
