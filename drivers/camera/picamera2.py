"""Raspberry Pi cameras through picamera2 (libcamera).

picamera2 comes from Raspberry Pi OS's apt (``python3-picamera2``), so it is
imported inside ``open()``: the config validates anywhere. Requests are copied
out and released in the grabber thread at once, so libcamera never runs out of
buffers while a pipeline is busy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from drivers.base import DeviceError, DeviceOptions
from drivers.camera.capture import GrabberCamera
from drivers.camera.options import Picamera2Options

#: What a C extension built against numpy 1.x (apt's picamera2, simplejpeg, libcamera) says under numpy 2.
NUMPY_ABI_SIGNS = ("dtype size changed", "compiled using NumPy 1.x", "_ARRAY_API", "numpy.core.multiarray")


def import_failure(camera: str, exc: BaseException) -> DeviceError:
    """A clear error for a failed ``import picamera2``: not installed, or broken by a numpy it was not built for."""
    text = str(exc)
    if any(sign in text for sign in NUMPY_ABI_SIGNS):
        return DeviceError(
            f"camera {camera}: picamera2 cannot load with numpy {np.__version__} ({text.splitlines()[0]}); "
            "apt's picamera2 and simplejpeg are built for Debian's numpy 1.x: in the agent's venv run "
            "pip install 'numpy<2' 'opencv-python-headless<4.12' (the pi extra pins both; systemd/install.sh uses it)"
        )
    return DeviceError(
        f"camera {camera}: picamera2 is not importable ({text}); on Raspberry Pi OS: "
        "apt install python3-picamera2 and create the venv with --system-site-packages"
    )


class Picamera2Camera(GrabberCamera[Picamera2Options]):
    Options: ClassVar[type[DeviceOptions]] = Picamera2Options

    def acquire(self) -> Any:
        try:
            from picamera2 import Picamera2
        except (ImportError, ValueError, AttributeError) as exc:
            # ValueError "numpy.dtype size changed" and AttributeError "_ARRAY_API not found" are how extensions
            # built for numpy 1.x fail under numpy 2 (picamera2 issues 1088, 1211): not a traceback per retry.
            raise import_failure(self.name, exc) from None
        o = self.options
        frame_us = int(1_000_000 / o.fps)
        try:
            camera = Picamera2(o.camera_num)
            config = camera.create_video_configuration(
                main={"size": (o.width, o.height), "format": o.format},
                buffer_count=o.buffer_count,
                controls={"FrameDurationLimits": (frame_us, frame_us)},
            )
            camera.configure(config)
            camera.start()
        except Exception as exc:  # libcamera raises RuntimeError/IndexError for a missing or busy camera
            raise DeviceError(f"camera {self.name}: cannot start Pi camera {o.camera_num}: {exc}") from exc
        return camera

    def grab(self, handle: Any) -> np.ndarray[Any, Any] | None:
        request = handle.capture_request()
        try:
            image = np.array(request.make_array("main"), copy=True)
        finally:
            request.release()
        if image.ndim == 3 and image.shape[2] == 4:
            image = np.ascontiguousarray(image[:, :, :3])
        if self.options.format in ("BGR888", "XBGR8888"):
            image = np.ascontiguousarray(image[:, :, ::-1])
        return image

    def release(self, handle: Any) -> None:
        try:
            handle.stop()
        finally:
            handle.close()

    def describe(self) -> str:
        o = self.options
        return f"picamera2 #{o.camera_num} {o.width}x{o.height}@{o.fps:g} {o.format}"
