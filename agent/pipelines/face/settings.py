"""``pipelines.face``: the face pipeline's settings (also read by the member commands for the gallery key)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from agent.pipelines.base import PipelineSettings
from drivers.registry import DeviceKind


class FaceSettings(PipelineSettings):
    """Face identification of consenting members (detection, liveness, embedding, gallery)."""

    SOURCE_FIELDS: ClassVar[dict[str, DeviceKind]] = {"cameras": "camera", "kiosk_cameras": "camera"}
    cameras: list[str] = Field(default_factory=list, description="Cameras to run face identification on.")
    kiosk_cameras: list[str] = Field(
        default_factory=list,
        description="Enrolment kiosks: the face cameras from which a signed enroll-member may take its photos "
        "(a consenting member in front of a kiosk). Empty: enrolment from photos only.",
    )
    kiosk_head_turn: bool = Field(
        True,
        description="Enrolment at a kiosk needs the active check: the member turns their head as the kiosk prompted "
        "(the request's head_turn), which a printed photo or a replayed video cannot follow (docs/liveness.md).",
    )
    head_turn_time_limit_s: float = Field(
        10.0, gt=1, le=120, description="How long the member has for the prompted turns, from the first frame."
    )
    embedder: Literal["sface", "mobilefacenet", "dlib"] = Field(
        "sface",
        description="Embedding model; SFace has the fewest false accepts of the three on unseen identities "
        "(docs/face.md); dlib is the public-domain ResNet (store-agent models fetch dlib_face_recognition_resnet_v1).",
    )
    detector_model: str = Field(
        "face_detection_yunet_2023mar_dynamic",
        description="Manifest name of the YuNet detector (the dynamic-shape file runs at detection_max_side).",
    )
    detection_max_side: int = Field(
        320, ge=160, le=1920, description="Frames are shrunk to this longer side for detection (dynamic YuNet)."
    )
    detection_threshold: float = Field(0.8, gt=0, lt=1, description="Minimum YuNet score for a face.")
    match_threshold: float = Field(
        0.50,
        gt=-1,
        lt=1,
        description="Minimum cosine similarity to a member's template, for a gallery of 50 members (a decision on "
        "min_frames frames); see threshold_per_gallery.",
    )
    threshold_per_gallery: bool = Field(
        True,
        description="Raise the threshold with the gallery's size (a stranger's best score over N members grows "
        "with N), so about 1 stranger in 1,000 is accepted whatever the size (docs/face.md).",
    )
    match_margin: float = Field(0.05, ge=0, lt=1, description="Best member must beat the next member by this much.")
    liveness_threshold: float = Field(
        0.5, ge=0, le=1, description="Minimum fused MiniFASNet real score (mean over frames)."
    )
    min_face_px: float = Field(32, ge=16, description="Faces smaller than this (shorter box side, pixels) are ignored.")
    min_sharpness: float = Field(30, ge=0, description="Minimum Laplacian variance of the aligned face crop.")
    max_yaw: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Largest head turn (nose offset in eye distances); 1.0 lets all but profiles through (a lower "
        "gate cost identifications and bought no fewer false accepts on the tuning identities).",
    )
    min_frames: int = Field(5, ge=1, le=50, description="Good frames a face needs before anything is decided.")
    best_frames: int = Field(5, ge=1, le=50, description="Best-quality frames whose embeddings are averaged.")
    track_timeout_s: float = Field(2.0, gt=0, description="A face unseen this long ends its track.")
    member_window_s: float = Field(
        30.0, gt=0, description="How long an identified member counts as 'at this terminal' (speech member_id)."
    )
    key_env: str | None = Field(
        "STORE_AGENT_GALLERY_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$", description="Env var holding the gallery key."
    )
    key_credential: str | None = Field(
        "gallery-key", pattern=r"^[A-Za-z0-9_.-]+$", description="systemd credential (LoadCredential=) holding the key."
    )
    key_file: Path | None = Field(None, description="Key file readable by its owner only (0400); never the key itself.")

    def model_names(self) -> list[str]:
        from models.face.analyzer import model_names  # exactly what the analyser loads

        return model_names(self.detector_model, self.embedder)

    @model_validator(mode="after")
    def _kiosks_are_face_cameras(self) -> FaceSettings:
        extra = sorted(set(self.kiosk_cameras) - set(self.cameras)) if self.cameras else []
        if extra:
            raise ValueError(f"kiosk_cameras must be face cameras (in cameras): {', '.join(extra)}")
        return self
