"""USB and CSI cameras through OpenCV's V4L2 backend (Linux).

Prefer ``/dev/v4l/by-id/...`` paths: ``/dev/videoN`` numbers change when
devices re-enumerate after an unplug. USB webcams usually need MJPG to reach
their full resolution and rate over USB 2.
"""

from __future__ import annotations

import logging
import os
from typing import ClassVar, Literal

import cv2
from pydantic import Field, field_validator

from drivers.base import DeviceError, DeviceOptions
from drivers.camera.capture import OpenCvCamera, set_props

logger = logging.getLogger(__name__)


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


class V4l2Camera(OpenCvCamera[V4l2Options]):
    Options: ClassVar[type[DeviceOptions]] = V4l2Options

    def create_capture(self) -> cv2.VideoCapture:
        o = self.options
        if isinstance(o.device, str) and not os.path.exists(o.device):
            raise DeviceError(f"camera {self.name}: {o.device} not found (unplugged, or wrong by-id path?)")
        capture = cv2.VideoCapture(o.device, cv2.CAP_V4L2)
        if not capture.isOpened():
            return capture
        props: list[tuple[int, float, str]] = []
        if o.fourcc:
            props.append((cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*o.fourcc), f"fourcc {o.fourcc}"))
        if o.width:
            props.append((cv2.CAP_PROP_FRAME_WIDTH, o.width, "width"))
        if o.height:
            props.append((cv2.CAP_PROP_FRAME_HEIGHT, o.height, "height"))
        if o.fps:
            props.append((cv2.CAP_PROP_FPS, o.fps, "fps"))
        props.append((cv2.CAP_PROP_BUFFERSIZE, 1, "buffer size"))
        props.append((cv2.CAP_PROP_READ_TIMEOUT_MSEC, o.stale_after_s * 1000, "read timeout"))
        set_props(capture, self.name, props)
        logger.info(
            "camera %s: %s opened at %dx%d %.1f fps",
            self.name,
            o.device,
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            capture.get(cv2.CAP_PROP_FPS),
        )
        return capture

    def describe(self) -> str:
        o = self.options
        return f"v4l2 {o.device} {o.width}x{o.height}@{o.fps or 0:g} {o.fourcc or ''}".rstrip()
