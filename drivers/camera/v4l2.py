"""USB and CSI cameras through OpenCV's V4L2 backend (Linux).

Prefer ``/dev/v4l/by-id/...`` paths: ``/dev/videoN`` numbers change when
devices re-enumerate after an unplug. USB webcams usually need MJPG to reach
their full resolution and rate over USB 2.
"""

from __future__ import annotations

import logging
import os
from typing import ClassVar

import cv2

from drivers.base import DeviceError, DeviceOptions
from drivers.camera.capture import OpenCvCamera, set_props
from drivers.camera.options import V4l2Options

logger = logging.getLogger(__name__)


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
