"""Replay microphone: a WAV file delivered as 16 kHz mono int16 chunks, like a live microphone.

Any PCM WAV (8/16/24/32-bit, any rate, any channel count) is converted: the
channels are averaged and the rate is changed with a polyphase filter.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, ValidationInfo, field_validator

from drivers.audio.pcm import to_int16
from drivers.base import AudioChunk, DeviceError, DeviceOptions, Driver, EndOfStream, ExistingFile, device_disabled
from drivers.pacing import Pacer


@dataclass(frozen=True)
class WavInfo:
    channels: int
    sample_width: int
    rate: int
    frames: int


def wav_info(path: Path) -> WavInfo:
    """Read the header of a PCM WAV file; ``ValueError`` saying what is wrong otherwise."""
    try:
        with wave.open(str(path), "rb") as f:
            info = WavInfo(f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a PCM WAV file: {path} ({exc})") from None
    if info.sample_width not in (1, 2, 3, 4):
        raise ValueError(f"unsupported WAV sample width {info.sample_width * 8} bits: {path}")
    if info.frames == 0:
        raise ValueError(f"WAV file has no audio: {path}")
    return info


def read_wav(path: Path, target_rate: int) -> npt.NDArray[np.int16]:
    """The whole file as mono int16 at ``target_rate``."""
    info = wav_info(path)
    with wave.open(str(path), "rb") as f:
        raw = f.readframes(info.frames)
    width = info.sample_width
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        data = ints.astype(np.float32) / 8388608.0
    else:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    data = data.reshape(-1, info.channels).mean(axis=1)
    if info.rate != target_rate:
        from scipy.signal import resample_poly

        g = gcd(info.rate, target_rate)
        data = resample_poly(data, target_rate // g, info.rate // g).astype(np.float32)
    return to_int16(data)


class WavFileOptions(DeviceOptions):
    type: Literal["wav-file"] = Field(description="Replay a PCM WAV file as a microphone.")
    path: ExistingFile = Field(description="The WAV file; relative paths are relative to the config file.")
    sample_rate: int = Field(
        16000, ge=8000, le=48000, description="Rate delivered to the pipeline (converted if needed)."
    )
    chunk_ms: int = Field(30, ge=10, le=100, description="Length of each delivered chunk in milliseconds.")
    realtime: bool = Field(True, description="Pace chunks like a live microphone; false: as fast as taken.")
    loop: bool = Field(False, description="Start again at the end instead of finishing.")

    @field_validator("path")
    @classmethod
    def _is_wav(cls, value: Path, info: ValidationInfo) -> Path:
        if not device_disabled(info):
            wav_info(value)
        return value


class WavFileMicrophone(Driver[AudioChunk, WavFileOptions]):
    Options: ClassVar[type[DeviceOptions]] = WavFileOptions
    is_replay: ClassVar[bool] = True

    def __init__(self, options: WavFileOptions) -> None:
        super().__init__(options)
        self._samples: npt.NDArray[np.int16] | None = None
        self._pacer: Pacer | None = None
        self._index = 0  # chunk within the file (pacing)
        self._consumed = 0  # file samples played over every loop and reopen: the timeline never goes back

    @property
    def realtime(self) -> bool:
        return self.options.realtime

    @property
    def endless(self) -> bool:
        return self.options.loop

    @property
    def chunk_samples(self) -> int:
        return self.options.sample_rate * self.options.chunk_ms // 1000

    def open(self) -> None:
        try:
            self._samples = read_wav(self.options.path, self.options.sample_rate)
        except (OSError, ValueError) as exc:
            raise DeviceError(f"microphone {self.name}: {exc}") from exc
        self._pacer = Pacer(1000.0 / self.options.chunk_ms, self.options.realtime)
        self._index = 0

    def read(self, timeout: float) -> AudioChunk | None:
        if self._samples is None or self._pacer is None:
            raise DeviceError(f"microphone {self.name}: read before open")
        n = self.chunk_samples
        start = self._index * n
        if start >= len(self._samples):
            if not self.options.loop:
                raise EndOfStream(f"microphone {self.name}: end of {self.options.path}")
            self._index, start = 0, 0
            self._pacer.restart()
        if not self._pacer.wait_for(self._index, timeout):
            return None
        block = self._samples[start : start + n]
        offset = self._consumed / self.options.sample_rate
        self._consumed += len(block)
        if len(block) < n:
            block = np.concatenate([block, np.zeros(n - len(block), np.int16)])
        self._index += 1
        return AudioChunk(
            source=self.name, capture=self.next_capture(offset), samples=block, sample_rate=self.options.sample_rate
        )

    def close(self) -> None:
        self._samples = None

    def describe(self) -> str:
        return f"wav-file {self.options.path}"
