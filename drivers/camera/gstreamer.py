"""Cameras described by a GStreamer pipeline (Jetson CSI via nvarguscamerasrc, hardware decoding).

Needs an OpenCV built with GStreamer (JetPack's OpenCV is; the opencv-python
wheels are not): ``open()`` says so clearly instead of failing obscurely.
"""

from __future__ import annotations

import re
from functools import cache
from typing import ClassVar

import cv2

from drivers.base import DeviceError, DeviceOptions
from drivers.camera.capture import OpenCvCamera
from drivers.camera.options import APPSINK_TAIL, GStreamerOptions


@cache
def opencv_has_gstreamer() -> bool:
    match = re.search(r"GStreamer:\s*(\w+)", cv2.getBuildInformation())
    return bool(match and match.group(1).upper() == "YES")


def full_pipeline(pipeline: str) -> str:
    """The pipeline ending in an appsink that hands BGR frames to OpenCV (appended when missing)."""
    pipeline = pipeline.strip().rstrip("!").strip()
    if re.search(r"\bappsink\b", pipeline):
        return pipeline
    return f"{pipeline} ! {APPSINK_TAIL}"


class GStreamerCamera(OpenCvCamera[GStreamerOptions]):
    Options: ClassVar[type[DeviceOptions]] = GStreamerOptions

    def create_capture(self) -> cv2.VideoCapture:
        if not opencv_has_gstreamer():
            raise DeviceError(
                f"camera {self.name}: this OpenCV ({cv2.__version__}) was built without GStreamer; "
                "use the distribution's OpenCV (JetPack, python3-opencv) in a --system-site-packages venv"
            )
        return cv2.VideoCapture(full_pipeline(self.options.pipeline), cv2.CAP_GSTREAMER)

    def describe(self) -> str:
        first = self.options.pipeline.split("!")[0].strip()
        return f"gstreamer {first} ..."
