"""RTSP camera against a real RTSP server (gst-rtsp-server) streaming a real video, killed and restarted.

Needs the system Python with PyGObject and the GstRtspServer typelib (Debian:
python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good); skipped,
with that reason, where they are missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from agent.backoff import Backoff
from agent.runtime.queues import DropPolicy, StageQueue
from agent.runtime.source import SourceRunner
from drivers.base import DeviceError, DeviceState, Frame
from drivers.camera.rtsp import RtspCamera, RtspOptions, redact, url_with_credentials
from tests.conftest import require_data
from tests.media import video_frames
from tests.prereq import require

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"


def _gst_rtsp_available() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    def __init__(self, port: int, video: Path, *options: str) -> None:
        self.port, self.video, self.options = port, video, options
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.port), str(self.video), *self.options],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "READY"

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="module")
def mjpeg_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PETS2009 clip re-encoded as MJPEG AVI, which the test server can stream without extra codecs."""
    source = require_data("media/video/vtest_pets2009_480x360.avi")
    out = tmp_path_factory.mktemp("rtsp") / "pets2009_mjpeg.avi"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (480, 360))
    for image in video_frames(source):
        writer.write(image)
    writer.release()
    return out


def need_gst_rtsp() -> None:
    if not _gst_rtsp_available():
        require(
            "the RTSP server",
            "gst-rtsp-server not available to the system python3 (apt install python3-gi "
            "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good)",
        )


@pytest.fixture
def server(mjpeg_video: Path) -> Iterator[RtspServer]:
    need_gst_rtsp()
    srv = RtspServer(_free_port(), mjpeg_video)
    srv.start()
    yield srv
    srv.kill()


def test_url_credentials_are_inserted_and_redacted() -> None:
    url = url_with_credentials("rtsp://cam.local:554/s1", "admin", "p@ss:w/rd")
    assert url == "rtsp://admin:p%40ss%3Aw%2Frd@cam.local:554/s1"
    assert redact(url) == "rtsp://***@cam.local:554/s1"
    with pytest.raises(ValueError, match="must not contain a password"):
        RtspOptions(name="cam", type="rtsp", url="rtsp://admin:secret@cam.local/s1")


def test_missing_password_variable_is_named_not_leaked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAM_PASSWORD", raising=False)
    camera = RtspCamera(
        RtspOptions(name="cam", type="rtsp", url="rtsp://127.0.0.1:9/x", username="u", password_env="CAM_PASSWORD")
    )
    with pytest.raises(DeviceError, match="environment variable CAM_PASSWORD"):
        camera.open()


def test_unreachable_server_fails_open_within_timeout() -> None:
    camera = RtspCamera(
        RtspOptions(name="cam", type="rtsp", url=f"rtsp://127.0.0.1:{_free_port()}/live", open_timeout_s=3)
    )
    started = time.monotonic()
    with pytest.raises(DeviceError, match=r"camera cam: cannot open rtsp://127.0.0.1:\d+/live"):
        camera.open()
    assert time.monotonic() - started < 10
    camera.close()


@pytest.mark.slow
def test_rtsp_server_killed_and_restarted(server: RtspServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_RTSP_PASSWORD", "s3cret")
    options = RtspOptions(
        name="entrance",
        type="rtsp",
        url=f"rtsp://127.0.0.1:{server.port}/live",
        username="viewer",
        password_env="TEST_RTSP_PASSWORD",
        read_timeout_s=0.5,
        stale_after_s=3.0,
        open_timeout_s=5.0,
    )
    camera = RtspCamera(options)
    assert "s3cret" not in camera.describe() and "viewer" not in camera.describe()
    queue: StageQueue[Frame] = StageQueue("frames", 2, DropPolicy.LATEST_WINS)
    states: list[tuple[float, DeviceState, str | None]] = []

    def on_state(name: str, kind: Any, state: DeviceState, previous: DeviceState, reason: str | None) -> None:
        states.append((time.monotonic(), state, reason))

    stop = threading.Event()
    runner = SourceRunner("camera", camera, [queue], stop, on_state, Backoff(initial_s=0.5, cap_s=2.0))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while runner.items < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runner.state is DeviceState.ONLINE and runner.items >= 30
        time.sleep(3.0)  # past FFmpeg's initial burst of buffered frames
        fps_before = runner.fps()
        assert fps_before > 5.0  # the stream runs at 10 fps
        frame = queue.get(1.0)
        assert frame is not None and frame.image.shape == (360, 480, 3)

        killed = time.monotonic()
        server.kill()
        while runner.state is not DeviceState.OFFLINE and time.monotonic() < killed + 20:
            time.sleep(0.05)
        offline_after = time.monotonic() - killed
        assert runner.state is DeviceState.OFFLINE
        reasons = " ".join(r or "" for _, _, r in states)
        assert "s3cret" not in reasons and "viewer" not in reasons

        time.sleep(2.0)  # the camera is down for a while; reopen attempts fail meanwhile
        server.start()
        restarted = time.monotonic()
        items_at_restart = runner.items
        while runner.state is not DeviceState.ONLINE and time.monotonic() < restarted + 30:
            time.sleep(0.05)
        online_after = time.monotonic() - restarted
        assert runner.state is DeviceState.ONLINE
        time.sleep(3.0)
        fps_after = runner.fps()
        assert runner.items - items_at_restart >= 15
        assert fps_after > 5.0
    finally:
        stop.set()
        runner.thread.join(15)
    assert not runner.thread.is_alive()
    print(
        f"\nRTSP: {fps_before:.1f} fps before; kill->offline {offline_after:.2f} s; "
        f"restart->online {online_after:.2f} s; "
        f"{fps_after:.1f} fps after; reopens {runner.reopens}"
    )
    os.environ.pop("TEST_RTSP_PASSWORD", None)


def _first_frame(options: RtspOptions) -> Frame | str:
    """The first frame the camera delivers, or the DeviceError's message."""
    camera = RtspCamera(options)
    try:
        camera.open()
        for _ in range(30):
            frame = camera.read(1.0)
            if frame is not None:
                return frame
        return "no frame"
    except DeviceError as exc:
        return str(exc)
    finally:
        camera.close()


def test_credentials_and_transport_reach_the_camera(
    mjpeg_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A camera that asks for credentials and serves RTP over TCP only: ``username`` + ``password_env`` (or
    ``password_credential``) open it, a wrong or missing password does not; ``transport: udp`` is refused, tcp works."""
    need_gst_rtsp()
    srv = RtspServer(_free_port(), mjpeg_video, "--user", "viewer", "--password", "s3cret", "--tcp-only")
    srv.start()
    monkeypatch.setenv("GOOD_PASSWORD", "s3cret")
    monkeypatch.setenv("BAD_PASSWORD", "guess")
    (tmp_path / "cam-password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    url = f"rtsp://127.0.0.1:{srv.port}/live"

    def attempt(**settings: Any) -> Frame | str:
        return _first_frame(RtspOptions(name="lobby", type="rtsp", url=url, open_timeout_s=5, **settings))

    try:
        good = attempt(username="viewer", password_env="GOOD_PASSWORD")
        assert isinstance(good, Frame) and good.image.shape == (360, 480, 3), good
        from_credential = attempt(username="viewer", password_credential="cam-password")
        assert isinstance(from_credential, Frame), from_credential
        assert attempt(username="viewer", password_env="BAD_PASSWORD") == f"camera lobby: cannot open {url}"
        assert attempt(username="someone", password_env="GOOD_PASSWORD") == f"camera lobby: cannot open {url}"
        assert attempt() == f"camera lobby: cannot open {url}"
        refused = attempt(username="viewer", password_env="GOOD_PASSWORD", transport="udp")
        assert refused == f"camera lobby: cannot open {url}"
        assert isinstance(attempt(username="viewer", password_env="GOOD_PASSWORD", transport="tcp"), Frame)
    finally:
        srv.kill()


def test_open_timeout_bounds_waiting_for_a_camera_that_never_answers() -> None:
    """``open_timeout_s``: a host that accepts the connection but never answers RTSP fails the open after
    that long (not FFmpeg's default of waiting much longer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    url = f"rtsp://127.0.0.1:{listener.getsockname()[1]}/live"
    took: dict[float, float] = {}
    try:
        for timeout in (0.5, 2.5):
            started = time.monotonic()
            assert _first_frame(RtspOptions(name="cam", type="rtsp", url=url, open_timeout_s=timeout)) == (
                f"camera cam: cannot open {url}"
            )
            took[timeout] = time.monotonic() - started
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert 0.45 <= took[0.5] < 1.5 and 2.4 <= took[2.5] < 4.0, took
