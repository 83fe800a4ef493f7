"""Live cameras and microphones: option checks everywhere, real hardware where present (skipped otherwise)."""

from __future__ import annotations

import ctypes.util
import glob
import json
import os
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.signal import resample_poly

from drivers.audio.sounddevice_mic import SoundDeviceMicrophone, SoundDeviceOptions, StreamResampler
from drivers.base import DeviceError
from drivers.camera.gstreamer import GStreamerCamera, GStreamerOptions, full_pipeline, opencv_has_gstreamer
from drivers.camera.picamera2 import Picamera2Camera, Picamera2Options
from drivers.camera.v4l2 import V4l2Camera, V4l2Options
from drivers.registry import driver_types
from tests.conftest import REPO, require_data


def test_registry_lists_every_driver() -> None:
    assert {"v4l2", "rtsp", "picamera2", "gstreamer"} <= set(driver_types("camera"))
    assert "sounddevice" in driver_types("microphone")
    assert {"pn532", "ascii-reader", "barcode"} <= set(driver_types("serial"))


def test_each_type_in_the_example_picks_its_driver() -> None:
    """``type`` picks the driver (and its settings model) of every entry of the example, enabled or not."""
    from agent.config.loader import load_config
    from drivers.registry import REGISTRY, create_driver

    config = load_config(REPO / "config" / "store-example.yaml").config
    seen = {}
    for kind in ("camera", "microphone", "serial"):
        for _, options in config.device_entries(kind):  # type: ignore[arg-type]
            driver = create_driver(kind, options)  # type: ignore[arg-type]
            module, _, cls = REGISTRY[kind][options.type][1].partition(":")  # type: ignore[attr-defined,index]
            assert (type(driver).__module__, type(driver).__name__) == (module, cls)
            assert type(options).__name__ == REGISTRY[kind][options.type][0].partition(":")[2]  # type: ignore[attr-defined,index]
            seen[options.type] = driver.describe().split()[0]  # type: ignore[attr-defined]
    assert seen == {
        "test-pattern": "test-pattern",
        "video-file": "video-file",
        "image-folder": "image-folder",
        "rtsp": "rtsp",
        "v4l2": "v4l2",
        "picamera2": "picamera2",
        "gstreamer": "gstreamer",
        "wav-file": "wav-file",
        "sounddevice": "sounddevice",
        "pn532": "pn532",
        "ascii-reader": "ascii-reader",
        "barcode": "barcode",
    }


def test_stream_resampler_matches_whole_file_conversion() -> None:
    """A real 16 kHz recording taken to 44.1 kHz, then back in 30 ms blocks, equals converting it whole."""
    wav = require_data("media/speech/synth")
    files = sorted(wav.glob("*.wav"))
    if not files:
        pytest.skip(f"no WAV files in {wav}")
    with wave.open(str(files[0]), "rb") as f:
        rate = f.getframerate()
        audio = np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32768.0
    device = resample_poly(audio, 441, rate // 100).astype(np.float32)  # what a 44.1 kHz card would capture
    whole = resample_poly(device, 160, 441)
    resampler = StreamResampler(44100, 16000)
    block = 1323  # 30 ms at 44.1 kHz
    out = np.concatenate([resampler.feed(device[i : i + block]) for i in range(0, len(device), block)])
    lag = resampler.pad * 160 // 441
    n = min(len(out), len(whole) - lag) - 200
    assert n > 16000 * 0.5
    error = np.abs(out[lag : lag + n] - whole[lag : lag + n]).max()
    assert error < 1e-3, error


def test_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="FOURCC is 4 ASCII"):
        V4l2Options(name="usb", type="v4l2", device="/dev/video0", fourcc="MJPEG")
    with pytest.raises(ValidationError, match="/dev/"):
        V4l2Options(name="usb", type="v4l2", device="video0")
    with pytest.raises(ValidationError, match="empty pipeline"):
        GStreamerOptions(name="csi", type="gstreamer", pipeline=" ! ")
    assert full_pipeline("videotestsrc !").endswith("appsink drop=true max-buffers=1 sync=false")
    assert full_pipeline("videotestsrc ! appsink") == "videotestsrc ! appsink"


def test_missing_v4l2_device_is_named() -> None:
    camera = V4l2Camera(V4l2Options(name="usb", type="v4l2", device="/dev/v4l/by-id/usb-none-video-index0"))
    with pytest.raises(DeviceError, match="camera usb: /dev/v4l/by-id/usb-none-video-index0 not found"):
        camera.open()
    camera.close()


def test_gstreamer_without_support_says_so() -> None:
    if opencv_has_gstreamer():
        pytest.skip("this OpenCV has GStreamer; the refusal path does not apply")
    camera = GStreamerCamera(GStreamerOptions(name="csi", type="gstreamer", pipeline="videotestsrc"))
    with pytest.raises(DeviceError, match="built without GStreamer"):
        camera.open()


@pytest.mark.skipif(not opencv_has_gstreamer(), reason="OpenCV built without GStreamer (pip wheels are)")
def test_gstreamer_videotestsrc() -> None:
    camera = GStreamerCamera(GStreamerOptions(name="csi", type="gstreamer", pipeline="videotestsrc is-live=true"))
    with camera:
        frames = [f for f in (camera.read(2.0) for _ in range(5)) if f is not None]
    assert frames and frames[0].image.shape[2] == 3


def test_picamera2_absent_is_explained() -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        camera = Picamera2Camera(Picamera2Options(name="pi", type="picamera2"))
        with pytest.raises(DeviceError, match=r"python3-picamera2.*system-site-packages"):
            camera.open()
        return
    pytest.skip("picamera2 is installed: covered by test_picamera2_frames")


@pytest.mark.skipif(not glob.glob("/dev/v4l/by-id/*") and not glob.glob("/dev/video*"), reason="no V4L2 device")
def test_v4l2_frames() -> None:
    device = (sorted(glob.glob("/dev/v4l/by-id/*-video-index0")) or sorted(glob.glob("/dev/video*")))[0]
    camera = V4l2Camera(V4l2Options(name="usb", type="v4l2", device=device, width=640, height=480))
    with camera:
        frames = [f for f in (camera.read(2.0) for _ in range(10)) if f is not None]
    assert frames and frames[-1].image.ndim == 3


def _picamera2_present() -> bool:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _picamera2_present(), reason="picamera2 not installed (Raspberry Pi OS only)")
def test_picamera2_frames() -> None:
    camera = Picamera2Camera(Picamera2Options(name="pi", type="picamera2", width=640, height=480))
    with camera:
        frames = [f for f in (camera.read(2.0) for _ in range(10)) if f is not None]
    assert frames and frames[-1].image.shape == (480, 640, 3)


def _input_device_present() -> bool:
    try:
        import sounddevice as sd

        return any(d["max_input_channels"] > 0 for d in sd.query_devices())
    except Exception:
        return False


def test_microphone_without_portaudio_or_card_fails_clearly() -> None:
    if _input_device_present():
        pytest.skip("an input device is present: covered by test_microphone_chunks")
    mic = SoundDeviceMicrophone(SoundDeviceOptions(name="mic", type="sounddevice"))
    with pytest.raises(DeviceError, match="microphone mic: "):
        mic.open()
    mic.close()


@pytest.mark.skipif(not _input_device_present(), reason="no PortAudio input device (libportaudio2 and a sound card)")
def test_microphone_chunks() -> None:
    mic = SoundDeviceMicrophone(SoundDeviceOptions(name="mic", type="sounddevice", chunk_ms=30))
    chunks = []
    with mic:
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            chunk = mic.read(0.5)
            if chunk is not None:
                chunks.append(chunk)
    assert len(chunks) > 30
    assert all(c.sample_rate == 16000 and len(c.samples) == 480 for c in chunks)


def _portaudio() -> bool:
    return ctypes.util.find_library("portaudio") is not None


@pytest.mark.skipif(not _portaudio(), reason="PortAudio is not installed (apt install libportaudio2)")
def test_microphone_settings_through_portaudio(tmp_path: Path) -> None:
    """The live microphone driver through real PortAudio and ALSA, the card being an ALSA ``file`` PCM that
    plays a 440 Hz tone recorded at 44.1 kHz: ``device`` picks it by name, ``device_rate`` is the rate it
    captures at (then converted), ``sample_rate`` and ``chunk_ms`` what the pipeline gets, ``latency`` the
    PortAudio latency class, ``ring_s`` the audio buffered between the callback and the pipeline."""
    rate = 44100
    t = np.arange(rate * 2) / rate
    (tmp_path / "tone.raw").write_bytes((0.5 * np.sin(2 * np.pi * 440.0 * t) * 32767).astype("<i2").tobytes())
    (tmp_path / ".asoundrc").write_text(
        'pcm.shelfmic {\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n'
        f'  infile "{tmp_path / "tone.raw"}"\n  format "raw"\n}}\n'
    )

    variants: list[dict[str, Any]] = [
        {"device_rate": 44100},
        {},  # no device_rate: captured at 16 kHz, which this raw file is not: the tone comes out low
        {"device_rate": 44100, "sample_rate": 8000, "chunk_ms": 20},
        {"chunk_ms": 10, "latency": "low"},
        {"chunk_ms": 10, "latency": "high"},
        {"ring_s": 0.3},
        {"ring_s": 5.0},
        {"device": "hallway"},
    ]
    options = [{"name": "mic", "type": "sounddevice", "device": "shelf", **v} for v in variants]
    result = subprocess.run(
        [sys.executable, "-m", "tests.drivers.mic_probe", json.dumps(options), "8"],
        cwd=REPO,
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    native, misread, small, low, high, short_ring, long_ring, missing = map(json.loads, result.stdout.splitlines())
    assert native["device"] == "shelfmic @ 44100 Hz x1" and native["rates"] == [16000]
    assert native["sizes"] == [480] and abs(native["peak_hz"] - 440) < 20, native  # converted from 44.1 kHz
    assert misread["device"] == "shelfmic @ 16000 Hz x1" and abs(misread["peak_hz"] - 440 * 16000 / 44100) < 20
    assert small["rates"] == [8000] and small["sizes"] == [160] and abs(small["peak_hz"] - 440) < 30, small
    assert low["latency_s"] < high["latency_s"], (low, high)
    assert short_ring["ring_s"] == pytest.approx(0.3, abs=0.03) and long_ring["ring_s"] == pytest.approx(5.0, abs=0.03)
    assert missing == {"error": "microphone mic: no input device named like 'hallway'"}


def _v4l2_device() -> str | None:
    found = sorted(glob.glob("/dev/v4l/by-id/*-video-index0")) or sorted(glob.glob("/dev/video*"))
    return found[0] if found else None


@pytest.mark.hardware
@pytest.mark.skipif(_v4l2_device() is None, reason="no V4L2 device")
def test_v4l2_settings_are_what_the_device_delivers() -> None:
    """``device``, ``width``, ``height``, ``fps`` and ``fourcc`` as the camera reports them back, and the frames.

    Asks for 640x480 (every UVC webcam offers it) in each pixel format the device accepts of MJPG and YUYV."""
    import cv2

    device = _v4l2_device()
    assert device is not None
    seen = 0
    for fourcc in ("MJPG", "YUYV"):
        options = V4l2Options(name="usb", type="v4l2", device=device, width=640, height=480, fps=15, fourcc=fourcc)
        camera = V4l2Camera(options)
        capture = camera.create_capture()
        try:
            code = int(capture.get(cv2.CAP_PROP_FOURCC))
            if code.to_bytes(4, "little").decode(errors="replace") != fourcc:
                continue  # this device does not offer the format
            assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)
            assert 0 < capture.get(cv2.CAP_PROP_FPS) <= 15.5
        finally:
            capture.release()
        with camera:
            frames = [f for f in (camera.read(2.0) for _ in range(5)) if f is not None]
        assert frames and frames[-1].image.shape == (480, 640, 3)
        seen += 1
    assert seen, f"{device} offers neither MJPG nor YUYV at 640x480"


@pytest.mark.hardware
@pytest.mark.skipif(not opencv_has_gstreamer(), reason="OpenCV built without GStreamer (pip wheels are)")
def test_gstreamer_pipeline_decides_the_frames() -> None:
    """``pipeline``: the caps written in it are the frames the camera delivers."""
    for width, height in ((320, 240), (640, 360)):
        pipeline = f"videotestsrc is-live=true ! video/x-raw,width={width},height={height},framerate=15/1"
        camera = GStreamerCamera(GStreamerOptions(name="csi", type="gstreamer", pipeline=pipeline))
        with camera:
            frames = [f for f in (camera.read(2.0) for _ in range(5)) if f is not None]
        assert frames and frames[-1].image.shape == (height, width, 3)


@pytest.mark.hardware
@pytest.mark.skipif(not _picamera2_present(), reason="picamera2 not installed (Raspberry Pi OS only)")
def test_picamera2_settings_reach_libcamera() -> None:
    """``camera_num``, ``buffer_count``, ``width`` and ``height`` as libcamera configured them, and the frames."""
    options = Picamera2Options(name="pi", type="picamera2", camera_num=0, buffer_count=3, width=640, height=480)
    camera = Picamera2Camera(options)
    handle = camera.acquire()
    try:
        config = handle.camera_config
        assert config["buffer_count"] == 3 and tuple(config["main"]["size"]) == (640, 480)
    finally:
        camera.release(handle)
    with camera:
        frames = [f for f in (camera.read(2.0) for _ in range(10)) if f is not None]
    assert frames and frames[-1].image.shape == (480, 640, 3)
    with pytest.raises(DeviceError, match="cannot start Pi camera 7"):
        Picamera2Camera(Picamera2Options(name="pi", type="picamera2", camera_num=7)).acquire()
