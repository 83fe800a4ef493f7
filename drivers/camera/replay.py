"""Replay cameras: a video file or a folder of images, registered like real cameras.

The demo config and most tests use them. In real-time mode frames arrive at the
recorded rate; otherwise as fast as the pipeline takes them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from drivers.base import (
    DeviceError,
    DeviceOptions,
    Driver,
    EndOfStream,
    Frame,
)
from drivers.camera.options import ImageFolderOptions, VideoFileOptions, images_in
from drivers.pacing import Pacer

logger = logging.getLogger(__name__)


def _resize(image: np.ndarray, width: int | None) -> np.ndarray:
    if width is None or image.shape[1] == width:
        return image
    height = round(image.shape[0] * width / image.shape[1])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class VideoFileCamera(Driver[Frame, VideoFileOptions]):
    Options: ClassVar[type[DeviceOptions]] = VideoFileOptions
    is_replay: ClassVar[bool] = True

    def __init__(self, options: VideoFileOptions) -> None:
        super().__init__(options)
        self._capture: cv2.VideoCapture | None = None
        self._pacer: Pacer | None = None
        self._index = 0  # frame within the file (pacing)
        self._consumed = 0  # frames read over every loop and reopen: the recorded timeline never goes back

    @property
    def realtime(self) -> bool:
        return self.options.realtime

    @property
    def endless(self) -> bool:
        return self.options.loop

    def open(self) -> None:
        capture = cv2.VideoCapture(str(self.options.path))
        if not capture.isOpened():
            raise DeviceError(f"camera {self.name}: cannot open video file {self.options.path}")
        file_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        rate = self.options.fps or (file_fps if 0 < file_fps <= 240 else 25.0)
        self._capture = capture
        self._pacer = Pacer(rate, self.options.realtime)
        self._index = 0

    def read(self, timeout: float) -> Frame | None:
        if self._capture is None or self._pacer is None:
            raise DeviceError(f"camera {self.name}: read before open")
        if not self._pacer.wait_for(self._index, timeout):
            return None
        ok, image = self._capture.read()
        if not ok:
            if not self.options.loop:
                raise EndOfStream(f"camera {self.name}: end of {self.options.path}")
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._pacer.restart()
            self._index = 0
            ok, image = self._capture.read()
            if not ok:
                raise DeviceError(f"camera {self.name}: cannot rewind {self.options.path}")
        offset = self._consumed / self._pacer.rate_hz
        self._index += 1
        self._consumed += 1
        return Frame(source=self.name, capture=self.next_capture(offset), image=_resize(image, self.options.width))

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def describe(self) -> str:
        return f"video-file {self.options.path}"


class ImageFolderCamera(Driver[Frame, ImageFolderOptions]):
    Options: ClassVar[type[DeviceOptions]] = ImageFolderOptions
    is_replay: ClassVar[bool] = True

    def __init__(self, options: ImageFolderOptions) -> None:
        super().__init__(options)
        self._files: list[Path] = []
        self._pacer: Pacer | None = None
        self._index = 0  # image within the folder (pacing)
        self._consumed = 0  # images taken over every loop and reopen: the recorded timeline never goes back

    @property
    def realtime(self) -> bool:
        return self.options.realtime

    @property
    def endless(self) -> bool:
        return self.options.loop

    def open(self) -> None:
        self._files = images_in(self.options.path)
        if not self._files:
            raise DeviceError(f"camera {self.name}: no images in {self.options.path}")
        self._pacer = Pacer(self.options.fps or 5.0, self.options.realtime)
        self._index = 0

    def read(self, timeout: float) -> Frame | None:
        if self._pacer is None:
            raise DeviceError(f"camera {self.name}: read before open")
        if self._index >= len(self._files):
            if not self.options.loop:
                raise EndOfStream(f"camera {self.name}: end of {self.options.path}")
            self._index = 0
            self._pacer.restart()
        if not self._pacer.wait_for(self._index, timeout):
            return None
        path = self._files[self._index]
        offset = self._consumed / self._pacer.rate_hz
        self._index += 1
        self._consumed += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            logger.warning("camera %s: skipping unreadable image %s", self.name, path)
            return None
        return Frame(source=self.name, capture=self.next_capture(offset), image=_resize(image, self.options.width))

    def close(self) -> None:
        self._files = []

    def describe(self) -> str:
        return f"image-folder {self.options.path}"
