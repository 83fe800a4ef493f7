"""Replay drivers on generated media (always) and on the real shared media (when present)."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.audio.replay import WavFileMicrophone, WavFileOptions, read_wav
from drivers.base import AudioChunk, DeviceError, Driver, EndOfStream, Frame
from drivers.camera.pattern import TestPatternCamera, TestPatternOptions
from drivers.camera.replay import ImageFolderCamera, ImageFolderOptions, VideoFileCamera, VideoFileOptions
from tests.conftest import require_data
from tests.media import write_video, write_wav


def drain(driver: Driver[Any, Any], limit: int = 100_000) -> list[Any]:
    items = []
    with driver:
        for _ in range(limit):
            try:
                item = driver.read(1.0)
            except EndOfStream:
                break
            if item is not None:
                items.append(item)
    return items


def test_video_file_delivers_every_frame_with_stamps(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.avi", frames=30, fps=10)
    frames: list[Frame] = drain(
        VideoFileCamera(VideoFileOptions(name="cam", type="video-file", path=path, realtime=False))
    )
    assert len(frames) == 30
    assert [f.capture.seq for f in frames] == list(range(1, 31))
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8
    assert not frames[0].image.flags.writeable
    # as-fast-as-possible replay stamps frames on the recording's timeline: exactly 1/fps apart
    steps = np.diff([f.capture.mono_ns for f in frames])
    assert np.all(steps == 100_000_000)
    # the white square moves right: a real decode, not a repeated frame
    xs = [int(np.argmax(f.image[50, :, 0] > 200)) for f in frames]
    assert xs == sorted(xs) and xs[-1] > xs[0] + 100


def test_video_file_loops_and_resizes(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.avi", frames=5)
    driver = VideoFileCamera(
        VideoFileOptions(name="cam", type="video-file", path=path, realtime=False, loop=True, width=80)
    )
    with driver:
        frames = [driver.read(1.0) for _ in range(12)]
    assert all(f is not None and f.image.shape == (60, 80, 3) for f in frames)
    assert frames[-1] is not None and frames[-1].capture.seq == 12


def test_replay_timeline_keeps_going_forward_across_loops_and_reopens(tmp_path: Path) -> None:
    """Offsets on the recorded timeline: 10 fps, so 0.1 s apart, through a loop and a reopen (device error path)."""
    path = write_video(tmp_path / "clip.avi", frames=4, fps=10)
    driver = VideoFileCamera(VideoFileOptions(name="cam", type="video-file", path=path, realtime=False, loop=True))
    with driver:
        frames = [driver.read(1.0) for _ in range(6)]  # one loop
        driver.close()
        driver.open()  # what the source runner does after an error
        frames += [driver.read(1.0) for _ in range(3)]
    stamps = [f.capture.mono_ns for f in frames if f is not None]
    assert len(stamps) == 9
    assert [round((b - a) / 1e8) for a, b in pairwise(stamps)] == [1] * 8


def test_realtime_pacing_waits_between_frames(tmp_path: Path) -> None:
    import time

    path = write_video(tmp_path / "clip.avi", frames=6, fps=10)
    driver = VideoFileCamera(VideoFileOptions(name="cam", type="video-file", path=path, realtime=True, fps=20))
    started = time.monotonic()
    frames = drain(driver)
    assert len(frames) == 6
    assert time.monotonic() - started >= 5 / 20 * 0.9  # six frames at 20 fps span at least 0.25 s


def test_image_folder_in_name_order_skipping_unreadable(tmp_path: Path) -> None:
    import cv2

    for i, value in enumerate([10, 20, 30]):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((40, 50, 3), value, np.uint8))
    (tmp_path / "004.jpg").write_bytes(b"not a jpeg")
    frames: list[Frame] = drain(
        ImageFolderCamera(ImageFolderOptions(name="cam", type="image-folder", path=tmp_path, realtime=False))
    )
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 20, 30]


def test_test_pattern_is_deterministic_and_finite() -> None:
    options = TestPatternOptions(name="p", type="test-pattern", frames=40, realtime=False, width=320, height=240)
    a = drain(TestPatternCamera(options))
    b = drain(TestPatternCamera(options))
    assert len(a) == 40
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(a[0].image, f.image) for f in a[1:])  # something moves


@pytest.mark.parametrize(("rate", "channels", "width"), [(16000, 1, 2), (44100, 2, 2), (8000, 1, 1), (48000, 1, 4)])
def test_wav_is_converted_to_16k_mono(tmp_path: Path, rate: int, channels: int, width: int) -> None:
    path = write_wav(tmp_path / "tone.wav", 1.0, rate, channels, freq=440.0, width=width)
    samples = read_wav(path, 16000)
    assert abs(len(samples) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    assert abs(int(np.argmax(spectrum)) - 440) <= 2  # 1 Hz bins over one second
    assert 14000 < np.abs(samples).max() <= 32767


def test_wav_microphone_chunks(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "tone.wav", 1.0, 22050)
    chunks: list[AudioChunk] = drain(
        WavFileMicrophone(WavFileOptions(name="mic", type="wav-file", path=path, realtime=False, chunk_ms=20))
    )
    assert len(chunks) == 50
    assert {len(c.samples) for c in chunks} == {320}
    assert chunks[0].sample_rate == 16000 and chunks[-1].capture.seq == 50
    assert chunks[10].capture.mono_ns - chunks[9].capture.mono_ns == 20_000_000


def test_read_before_open_is_a_device_error(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "tone.wav", 0.1, 16000)
    with pytest.raises(DeviceError, match="mic"):
        WavFileMicrophone(WavFileOptions(name="mic", type="wav-file", path=path)).read(0.1)


def test_real_pedestrian_video() -> None:
    path = require_data("media/video/vtest_pets2009_480x360.avi")
    frames = drain(VideoFileCamera(VideoFileOptions(name="pets", type="video-file", path=path, realtime=False)))
    assert len(frames) == 795
    assert frames[0].image.shape == (360, 480, 3)


def test_real_speech_wav() -> None:
    path = require_data("media/speech/en/goforward.wav")
    chunks = drain(WavFileMicrophone(WavFileOptions(name="mic", type="wav-file", path=path, realtime=False)))
    audio = np.concatenate([c.samples for c in chunks])
    assert len(chunks) > 30
    assert np.abs(audio).max() > 3000  # real speech, not silence


def _timed_drain(driver: Driver[Any, Any], limit: int = 100_000) -> tuple[list[Any], float]:
    started = time.monotonic()
    items = drain(driver, limit)
    return items, time.monotonic() - started


def test_test_pattern_settings_shape_the_frames() -> None:
    """``width``, ``height``, ``frames``, ``fps``, ``walkers``, ``seed`` and ``realtime`` of the synthetic camera."""

    def run(**settings: Any) -> tuple[list[Frame], float]:
        options = TestPatternOptions(name="p", type="test-pattern", **{"realtime": False, "frames": 12, **settings})
        return _timed_drain(TestPatternCamera(options))

    frames, _ = run(width=160, height=96, fps=4)
    assert len(frames) == 12 and frames[0].image.shape == (96, 160, 3)
    assert set(np.diff([f.capture.mono_ns for f in frames])) == {250_000_000}  # 1 / fps on the recorded timeline
    assert len(run(frames=5)[0]) == 5

    def moving(frames: list[Frame]) -> bool:
        # the frame counter text (top rows) changes every frame; the figures walk below it
        return any(not np.array_equal(a.image[40:], b.image[40:]) for a, b in pairwise(frames))

    one = run(walkers=1, seed=7, frames=100)[0]
    assert moving(one)
    assert not moving(run(walkers=0, frames=100)[0])  # nobody crossing: a still scene
    other = run(walkers=1, seed=8, frames=100)[0]
    assert any(not np.array_equal(a.image, b.image) for a, b in zip(one, other, strict=True))  # seed: another plan
    _, fast = run(frames=6, fps=10)
    _, paced = run(frames=6, fps=10, realtime=True)
    assert fast < 0.2 and paced >= 0.45, (fast, paced)  # six frames at 10 fps span half a second


def test_video_file_fps_replaces_the_files_own_rate(tmp_path: Path) -> None:
    """``fps`` null replays at the file's rate; a number replays at that rate instead (timeline and pacing)."""
    path = write_video(tmp_path / "clip.avi", frames=6, fps=10)

    def steps(**settings: Any) -> set[int]:
        options = VideoFileOptions(name="cam", type="video-file", path=path, realtime=False, **settings)
        return set(np.diff([f.capture.mono_ns for f in drain(VideoFileCamera(options))]).tolist())

    assert steps() == {100_000_000}
    assert steps(fps=25) == {40_000_000}
    _, took = _timed_drain(VideoFileCamera(VideoFileOptions(name="cam", type="video-file", path=path, fps=40)))
    assert 0.1 <= took < 0.4, took  # six frames at 40 fps: 0.125 s, not the file's 0.5 s


def test_image_folder_fps_realtime_and_loop(tmp_path: Path) -> None:
    """``fps`` sets the replay rate, ``realtime`` paces it, ``loop`` starts again after the last image."""
    import cv2

    for i, value in enumerate([10, 20, 30]):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((40, 50, 3), value, np.uint8))

    def camera(**settings: Any) -> ImageFolderCamera:
        return ImageFolderCamera(ImageFolderOptions(name="cam", type="image-folder", path=tmp_path, **settings))

    frames = drain(camera(realtime=False, fps=4))
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 20, 30]
    assert set(np.diff([f.capture.mono_ns for f in frames])) == {250_000_000}
    looped = drain(camera(realtime=False, loop=True), limit=8)
    assert [int(f.image[0, 0, 0]) for f in looped] == [10, 20, 30] * 2 + [10, 20]
    _, fast = _timed_drain(camera(realtime=False, fps=5))
    _, paced = _timed_drain(camera(realtime=True, fps=5))
    assert fast < 0.2 and paced >= 0.38, (fast, paced)  # three images at 5 fps span 0.4 s


def test_wav_microphone_rate_realtime_and_loop(tmp_path: Path) -> None:
    """``sample_rate`` is the rate delivered (converted), ``chunk_ms`` at that rate, ``realtime`` paces the
    chunks like a live microphone, ``loop`` plays the file again."""
    path = write_wav(tmp_path / "tone.wav", 0.3, 22050, freq=440.0)

    def mic(**settings: Any) -> WavFileMicrophone:
        return WavFileMicrophone(WavFileOptions(name="mic", type="wav-file", path=path, **settings))

    chunks: list[AudioChunk] = drain(mic(realtime=False, sample_rate=8000, chunk_ms=30))
    assert {c.sample_rate for c in chunks} == {8000} and {len(c.samples) for c in chunks} == {240}
    audio = np.concatenate([c.samples for c in chunks]).astype(np.float64)
    assert abs(np.argmax(np.abs(np.fft.rfft(audio))) * 8000 / len(audio) - 440) < 15  # the tone survives
    assert len(drain(mic(realtime=False, sample_rate=16000, chunk_ms=30))) == 10
    looped = drain(mic(realtime=False, loop=True, chunk_ms=30), limit=25)
    assert len(looped) == 25 and looped[-1].capture.seq == 25  # 10 chunks per pass, played again
    _, fast = _timed_drain(mic(realtime=False, chunk_ms=30))
    _, paced = _timed_drain(mic(realtime=True, chunk_ms=30))
    assert fast < 0.15 and paced >= 0.25, (fast, paced)  # ten 30 ms chunks span 0.3 s
