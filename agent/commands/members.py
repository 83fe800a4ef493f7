"""Commands for the member gallery: ``enroll-member``, ``erase-member``, ``list-members``.

They run on the daemon's command thread and use the running face pipeline's
gallery when there is one (so a new member is matched from the next frame),
or open the terminal's gallery from the config when the face pipeline is off:
erasure must work whatever is enabled. Requests look like::

    cmd/enroll-member {"request_id": "r1", "member_id": "M-1",
                       "consent": {"reference": "form-123", "expires": "2027-01-31", "guardian": false},
                       "images": ["<base64 JPEG or PNG>", ...]}
    cmd/enroll-member {"request_id": "r1", "member_id": "M-1", "consent": {...}, "camera": "kiosk", "frames": 3}
    cmd/erase-member  {"request_id": "r2", "member_id": "M-1"}
    cmd/list-members  {"request_id": "r3"}

A refused photo is named by its index with the reason; nothing in a reply
carries an image or a template. With ``camera`` (a kiosk where the member
opts in), the next ``frames`` frames of that camera's running face pipeline are
the photos, each judged like an uploaded one (one face, quality, liveness).
"""

from __future__ import annotations

import base64
import binascii
import logging
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
from agent.pipelines.face.resources import load_analyzer, open_gallery
from agent.pipelines.face.settings import FaceSettings

logger = logging.getLogger(__name__)

MEMBER_ID_MAX = 128
MAX_IMAGES = 10
#: Camera enrolment: how long to wait for the requested number of new frames.
CAMERA_WAIT_S = 5.0


@contextmanager
def _gallery(host: CommandHost) -> Iterator[Gallery]:
    """The running pipeline's gallery (shared), else one opened for this command and closed after it."""
    shared = host.shared()
    if shared is not None and shared.gallery is not None:
        yield shared.gallery
        return
    config = host.loaded.config
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
    unknown_args(raw, {"reference", "scope", "expires", "guardian"})
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
    return Consent(raw["reference"], scope, 0.0, expires_at, guardian)


#: A few full-resolution photos in base64 (the default command limit is 64 KiB).
ENROLL_MAX_BYTES = 8 * 1024 * 1024


def _enroll_member(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    unknown_args(args, {"member_id", "consent", "images", "camera", "frames"})
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
    kiosks = host.loaded.config.pipelines.settings(FaceSettings).kiosk_cameras
    if camera not in kiosks:
        raise CommandFailed(
            f"camera {camera!r} is not an enrolment kiosk (pipelines.face.kiosk_cameras: {', '.join(kiosks) or 'none'})"
        )
    shared = host.shared()
    frames = shared.frames if shared is not None else None
    if frames is None or camera not in frames.cameras():
        known = ", ".join(frames.cameras()) if frames is not None else "none"
        raise CommandFailed(f"camera {camera!r} has no running face pipeline (face cameras: {known})")
    images = frames.collect(str(camera), count, CAMERA_WAIT_S)
    if not images:
        raise CommandFailed(f"camera {camera!r} delivered no frame within {CAMERA_WAIT_S:.0f} s")
    return [(f"frame {i}", image) for i, image in enumerate(images)]


def _erase_member(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    unknown_args(args, {"member_id"})
    member_id = _member_id(args)
    with _gallery(host) as gallery:
        result = erase_member(gallery, member_id, reason="mqtt command")
    return {
        "member_id": member_id,
        "was_enrolled": result.was_enrolled,
        "queued_events_removed": result.queued_events_removed,
    }


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
