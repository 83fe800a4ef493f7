"""Settings of every camera driver, importable without OpenCV so a config validates on any machine.

Each driver module imports its options from here; ``drivers/registry.py``
names both, so validating a config never imports a driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from drivers.base import DeviceOptions, ExistingDir, ExistingFile, device_disabled

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ReplayOptions(DeviceOptions):
    realtime: bool = Field(
        True, description="Pace frames like a live camera; false: as fast as the pipeline takes them."
    )
    loop: bool = Field(False, description="Start again at the end instead of finishing.")
    fps: float | None = Field(None, gt=0, le=240, description="Replay rate; default: the file's own rate.")
    width: int | None = Field(None, ge=16, le=7680, description="Resize frames to this width (keeps aspect ratio).")


class VideoFileOptions(ReplayOptions):
    type: Literal["video-file"] = Field(description="Replay a video file (any format OpenCV's FFmpeg can decode).")
    path: ExistingFile = Field(description="The video file; relative paths are relative to the config file.")

    @field_validator("path")
    @classmethod
    def _decodable(cls, value: Path, info: ValidationInfo) -> Path:
        if device_disabled(info):
            return value
        import cv2  # here, not at the top: validating a config must not need OpenCV unless a video is named

        capture = cv2.VideoCapture(str(value))
        try:
            ok, _ = capture.read() if capture.isOpened() else (False, None)
        finally:
            capture.release()
        if not ok:
            raise ValueError(f"not a readable video file: OpenCV could not decode a frame from {value}")
        return value


class ImageFolderOptions(ReplayOptions):
    type: Literal["image-folder"] = Field(description="Replay the images of a folder in name order.")
    path: ExistingDir = Field(description="Folder of .jpg/.png/.bmp/.webp images.")

    @field_validator("path")
    @classmethod
    def _has_images(cls, value: Path, info: ValidationInfo) -> Path:
        if device_disabled(info):
            return value
        if not images_in(value):
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {value}")
        return value


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class TestPatternOptions(DeviceOptions):
    __test__ = False  # not a pytest class despite the name
    type: Literal["test-pattern"] = Field(description="Synthetic camera: figures walking across a static scene.")
    width: int = Field(640, ge=64, le=3840, description="Frame width in pixels.")
    height: int = Field(480, ge=48, le=2160, description="Frame height in pixels.")
    fps: float = Field(10.0, gt=0, le=120, description="Frames per second.")
    frames: int = Field(0, ge=0, description="Frames to produce before finishing; 0 runs forever.")
    walkers: int = Field(
        1, ge=0, le=20, description="Figures crossing the scene; each pauses off-screen between crossings."
    )
    realtime: bool = Field(
        True, description="Pace frames like a live camera; false: as fast as the pipeline takes them."
    )
    seed: int = Field(7, description="Seed of the figures' timing and colours, so runs repeat exactly.")


class V4l2Options(DeviceOptions):
    type: Literal["v4l2"] = Field(description="USB/CSI camera through Video4Linux2.")
    device: str | int = Field(
        description="Device path (/dev/v4l/by-id/...-video-index0 preferred, or /dev/videoN) or index N."
    )
    width: int | None = Field(
        1280, ge=16, le=7680, description="Requested frame width (the driver may pick the nearest)."
    )
    height: int | None = Field(720, ge=16, le=4320, description="Requested frame height.")
    fps: float | None = Field(15.0, gt=0, le=240, description="Requested frame rate.")
    fourcc: str | None = Field(
        "MJPG", description="Pixel format as a FOURCC (MJPG for USB webcams, YUYV for raw); null: the driver default."
    )

    @field_validator("fourcc")
    @classmethod
    def _fourcc(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 4 or not value.isascii()):
            raise ValueError(f"a FOURCC is 4 ASCII characters, e.g. MJPG or YUYV (got {value!r})")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | int) -> str | int:
        if isinstance(value, int) and value < 0:
            raise ValueError(f"index must be 0 or more (got {value})")
        if isinstance(value, str) and not value.startswith("/dev/"):
            raise ValueError(f"must be a /dev/... path or an index (got {value!r})")
        return value


def redact(url: str) -> str:
    """``url`` without user name or password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


class RtspOptions(DeviceOptions):
    type: Literal["rtsp"] = Field(description="Network camera over RTSP (H.264/H.265/MJPEG), decoded by FFmpeg.")
    url: str = Field(description="rtsp://host[:port]/path without credentials, e.g. rtsp://192.168.1.20:554/stream1.")
    username: str | None = Field(None, description="User name, when the camera requires one.")
    password_env: str | None = Field(
        None, pattern=r"^[A-Z_][A-Z0-9_]*$", description="Environment variable holding the camera password."
    )
    password_credential: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="systemd credential (LoadCredential=) holding the password."
    )
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTP transport; TCP survives lossy Wi-Fi and NAT.")
    open_timeout_s: float = Field(10.0, gt=0, le=60, description="Longest wait to connect and receive the first data.")

    @field_validator("url")
    @classmethod
    def _rtsp_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise ValueError(f"must be an rtsp:// or rtsps:// URL with a host (got {redact(value)!r})")
        if parts.password is not None:
            raise ValueError("must not contain a password: use password_env or password_credential")
        return value

    @model_validator(mode="after")
    def _one_password_source(self) -> RtspOptions:
        if self.password_env and self.password_credential:
            raise ValueError("give password_env or password_credential, not both")
        return self


class Picamera2Options(DeviceOptions):
    type: Literal["picamera2"] = Field(description="Raspberry Pi camera module through libcamera/picamera2.")
    camera_num: int = Field(0, ge=0, le=7, description="Which camera, for boards with several.")
    width: int = Field(1280, ge=64, le=4608, description="Main stream width.")
    height: int = Field(720, ge=64, le=3496, description="Main stream height.")
    format: Literal["RGB888", "BGR888", "XRGB8888", "XBGR8888"] = Field(
        "RGB888",
        description="Main stream pixel format; libcamera's RGB888 is B,G,R in memory (OpenCV order). "
        "X formats carry a 4th byte (dropped).",
    )
    fps: float = Field(15.0, gt=0, le=120, description="Frame rate, set through FrameDurationLimits.")
    buffer_count: int = Field(4, ge=2, le=12, description="libcamera buffers in the queue.")


APPSINK_TAIL = "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"


class GStreamerOptions(DeviceOptions):
    type: Literal["gstreamer"] = Field(description="A GStreamer pipeline (needs OpenCV built with GStreamer).")
    pipeline: str = Field(
        description="Source part of a gst-launch pipeline, e.g. 'nvarguscamerasrc sensor-id=0 ! "
        "video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! nvvidconv ! video/x-raw,format=BGRx'; "
        f"'! {APPSINK_TAIL}' is appended unless it has an appsink."
    )

    @field_validator("pipeline")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip().rstrip("!").strip():
            raise ValueError("empty pipeline")
        return value
