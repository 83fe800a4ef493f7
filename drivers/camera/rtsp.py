"""RTSP network cameras through OpenCV's FFmpeg backend, over TCP, with open and read timeouts.

The password never appears in the config file or the logs: it is read from an
environment variable (or a systemd credential) at ``open()`` and inserted into
the URL handed to FFmpeg only. Every message uses :func:`redact`.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import ClassVar, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import cv2
from pydantic import Field, field_validator, model_validator

from drivers.base import DeviceError, DeviceOptions
from drivers.camera.capture import OpenCvCamera
from drivers.secrets import SecretError, read_secret

logger = logging.getLogger(__name__)

_FFMPEG_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_env_lock = threading.Lock()  # the FFmpeg option string is process-wide: one RTSP open at a time


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
