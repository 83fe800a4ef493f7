"""RTSP network cameras through OpenCV's FFmpeg backend, over TCP, with open and read timeouts.

The password never appears in the config file or the logs: it is read from an
environment variable (or a systemd credential) at ``open()`` and inserted into
the URL handed to FFmpeg only. Every message uses :func:`redact`.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import cv2

from drivers.base import DeviceError, DeviceOptions
from drivers.camera.capture import OpenCvCamera
from drivers.camera.options import RtspOptions, redact
from drivers.secrets import SecretError, read_secret

logger = logging.getLogger(__name__)

_FFMPEG_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_env_lock = threading.Lock()  # the FFmpeg option string is process-wide: one RTSP open at a time


def _password(options: RtspOptions, device: str) -> str | None:
    try:
        return read_secret(options.password_env, options.password_credential)
    except SecretError as exc:
        raise DeviceError(f"camera {device}: password: {exc}") from None


def url_with_credentials(url: str, username: str | None, password: str | None) -> str:
    """Insert percent-encoded credentials into an RTSP URL."""
    if username is None and password is None:
        return url
    parts = urlsplit(url)
    userinfo = quote(username or "", safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


class RtspCamera(OpenCvCamera[RtspOptions]):
    Options: ClassVar[type[DeviceOptions]] = RtspOptions

    def create_capture(self) -> cv2.VideoCapture:
        o = self.options
        url = url_with_credentials(o.url, o.username, _password(o, self.name))
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(o.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(o.stale_after_s * 1000),
        ]
        with _env_lock:
            previous = os.environ.get(_FFMPEG_ENV)
            os.environ[_FFMPEG_ENV] = f"rtsp_transport;{o.transport}"
            try:
                capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
            finally:
                if previous is None:
                    os.environ.pop(_FFMPEG_ENV, None)
                else:
                    os.environ[_FFMPEG_ENV] = previous
        return capture

    def target(self) -> str:
        return redact(self.options.url)

    def describe(self) -> str:
        return f"rtsp {redact(self.options.url)} over {self.options.transport}"
