"""Live cameras behind the driver interface, with a grabber thread that owns the capture.

Backends block while grabbing (RTSP waits for packets, V4L2 and libcamera for a
buffer), so the capture lives in one grabber thread that keeps only the newest frame
(latest-wins at the source: a slow consumer never builds up stream latency).
``read(timeout)`` waits on that slot and so never blocks past its timeout; the
backend's own timeouts (``stale_after_s``) bound how long the grabber can hang.
The thread releases the capture itself when it ends, so ``close()`` never
releases a capture another thread is still reading (a crash in some backends).
"""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from typing import Any, TypeVar

import cv2
import numpy as np

from drivers.base import Capture, DeviceError, DeviceOptions, Driver, Frame

logger = logging.getLogger(__name__)

OptionsT = TypeVar("OptionsT", bound=DeviceOptions)


class GrabberCamera(Driver[Frame, OptionsT]):
    """Base of the live cameras: subclasses acquire the backend, grab one image, and release it.

    ``acquire`` runs in ``open()`` (errors surface there); ``grab`` and
    ``release`` run in the grabber thread only.
    """

    def __init__(self, options: OptionsT) -> None:
        super().__init__(options)
        self._cond = threading.Condition()
        self._latest: tuple[Capture, np.ndarray[Any, Any]] | None = None
        self._failure: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.grabbed = 0
        self.dropped = 0  # frames replaced in the slot before anyone read them

    @abstractmethod
    def acquire(self) -> Any:
        """Open the backend and return its handle, or raise :class:`DeviceError` naming the device."""

    @abstractmethod
    def grab(self, handle: Any) -> np.ndarray[Any, Any] | None:
        """Block for the next BGR image (an array this driver owns); ``None`` when the source failed."""

    @abstractmethod
    def release(self, handle: Any) -> None:
        """Free the backend (called once, in the grabber thread)."""

    def target(self) -> str:
        """Where the frames come from, safe for logs (no credentials)."""
        return self.describe()

    def open(self) -> None:
        self.close()
        handle = self.acquire()
        self._stop = threading.Event()
        self._latest, self._failure = None, None
        self._thread = threading.Thread(
            target=self._grab_loop, args=(handle, self._stop), name=f"grab-{self.name}", daemon=True
        )
        self._thread.start()

    def _grab_loop(self, handle: Any, stop: threading.Event) -> None:
        failure = "stopped"
        try:
            while not stop.is_set():
                image = self.grab(handle)
                if stop.is_set():
                    break
                if image is None:
                    failure = f"no frame from {self.target()} (stream ended, device gone, or timed out)"
                    break
                if image.ndim == 2:
                    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                stamp = Capture.now(0)
                with self._cond:
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = (stamp, image)
                    self.grabbed += 1
                    self._cond.notify_all()
        except Exception as exc:  # a backend exception ends this session; the runtime reopens
            failure = f"capture error from {self.target()}: {type(exc).__name__}: {exc}"
        finally:
            try:
                self.release(handle)
            except Exception as exc:
                logger.debug("camera %s: error releasing %s: %s", self.name, self.target(), exc)
            with self._cond:
                self._failure = failure
                self._cond.notify_all()

    def read(self, timeout: float) -> Frame | None:
        if self._thread is None:
            raise DeviceError(f"camera {self.name}: read before open")
        with self._cond:
            if self._latest is None and self._failure is None:
                self._cond.wait(timeout)
            latest, self._latest = self._latest, None
            failure = self._failure
        if latest is None:
            if failure is not None:
                raise DeviceError(f"camera {self.name}: {failure}")
            return None
        stamp, image = latest
        self._seq += 1
        return Frame(source=self.name, capture=Capture(self._seq, stamp.mono_ns, stamp.wall_time), image=image)

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        join_s = float(getattr(self.options, "stale_after_s", 10.0)) + 2.0
        thread.join(join_s)
        if thread.is_alive():
            logger.warning(
                "camera %s: grabber still blocked in the backend after %.0f s; abandoning it", self.name, join_s
            )


class OpenCvCamera(GrabberCamera[OptionsT]):
    """A camera read through OpenCV's ``VideoCapture`` (V4L2, FFmpeg or GStreamer backend)."""

    @abstractmethod
    def create_capture(self) -> cv2.VideoCapture:
        """Construct and configure the capture (it may be unopened: checked here)."""

    def acquire(self) -> cv2.VideoCapture:
        capture = self.create_capture()
        if not capture.isOpened():
            capture.release()
            raise DeviceError(f"camera {self.name}: cannot open {self.target()}")
        return capture

    def grab(self, handle: Any) -> np.ndarray[Any, Any] | None:
        ok, image = handle.read()
        return image if ok else None

    def release(self, handle: Any) -> None:
        handle.release()


def set_props(capture: cv2.VideoCapture, name: str, props: list[tuple[int, float, str]]) -> None:
    """Apply capture properties, logging the ones the backend refused (drivers differ widely)."""
    for prop, value, label in props:
        if not capture.set(prop, value):
            logger.info("camera %s: backend ignored %s=%s", name, label, value)
