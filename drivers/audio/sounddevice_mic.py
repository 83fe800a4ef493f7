"""Live microphones through PortAudio (sounddevice): 16 kHz mono int16 in 20–30 ms chunks.

The PortAudio callback runs on a real-time audio thread: it only copies the
block into a bounded queue and counts overflows (PortAudio's and the queue's).
Channel mixing and rate conversion happen in ``read()`` on the driver's thread.
A device that cannot deliver 16 kHz mono is opened at its own rate and channel
count and converted with a streaming polyphase resampler.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from drivers.audio.pcm import StreamResampler, to_int16, to_mono_float
from drivers.base import AudioChunk, Capture, DeviceError, DeviceOptions, Driver

logger = logging.getLogger(__name__)


class SoundDeviceOptions(DeviceOptions):
    type: Literal["sounddevice"] = Field(description="Live microphone through PortAudio (ALSA/PulseAudio/PipeWire).")
    device: str | int | None = Field(
        None, description="Input device index, or part of its name (as `python -m sounddevice` lists); null: default."
    )
    sample_rate: int = Field(16000, ge=8000, le=48000, description="Rate delivered to the pipeline.")
    chunk_ms: int = Field(30, ge=10, le=100, description="Chunk length delivered to the pipeline (20–30 ms usual).")
    device_rate: int | None = Field(
        None, ge=8000, le=192000, description="Capture rate; null: sample_rate if the device supports it, else its own."
    )
    ring_s: float = Field(2.0, gt=0, le=30, description="Audio buffered between the callback and the pipeline.")
    latency: Literal["low", "high"] = Field("low", description="PortAudio latency class.")


class SoundDeviceMicrophone(Driver[AudioChunk, SoundDeviceOptions]):
    Options: ClassVar[type[DeviceOptions]] = SoundDeviceOptions

    def __init__(self, options: SoundDeviceOptions) -> None:
        super().__init__(options)
        self._stream: Any = None
        self._ring: queue.Queue[tuple[npt.NDArray[np.int16], int]] = queue.Queue()
        self._resampler: StreamResampler | None = None
        self._out = np.zeros(0, np.float32)
        self._last_stamp_ns = 0
        self.overflows = 0  # PortAudio input overflows (the OS dropped audio)
        self.ring_drops = 0  # blocks dropped because the pipeline fell behind
        self.device_label = ""

    @property
    def chunk_samples(self) -> int:
        return self.options.sample_rate * self.options.chunk_ms // 1000

    def _sd(self) -> Any:
        try:
            import sounddevice
        except OSError as exc:  # "PortAudio library not found"
            raise DeviceError(f"microphone {self.name}: {exc} (apt install libportaudio2)") from None
        return sounddevice

    def _resolve(self, sd: Any) -> int:
        o = self.options
        try:
            if o.device is None:
                return int(sd.query_devices(kind="input")["index"])
            if isinstance(o.device, int):
                info = sd.query_devices(o.device)
                if info["max_input_channels"] < 1:
                    raise DeviceError(f"microphone {self.name}: device {o.device} ({info['name']}) has no inputs")
                return o.device
            for info in sd.query_devices():
                if o.device.lower() in info["name"].lower() and info["max_input_channels"] > 0:
                    return int(info["index"])
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(f"microphone {self.name}: {exc}") from None
        raise DeviceError(f"microphone {self.name}: no input device named like {o.device!r}")

    def _settings(self, sd: Any, index: int) -> tuple[int, int]:
        """The (rate, channels) to capture at: 16 kHz mono when the device takes it, else its own."""
        o = self.options
        info = sd.query_devices(index)
        rates = [o.device_rate] if o.device_rate else [o.sample_rate, int(info["default_samplerate"])]
        for rate in rates:
            for channels in sorted({1, min(2, int(info["max_input_channels"]))}):
                try:
                    sd.check_input_settings(device=index, samplerate=rate, channels=channels, dtype="int16")
                    return rate, channels
                except (sd.PortAudioError, ValueError):
                    continue
        raise DeviceError(f"microphone {self.name}: {info['name']} accepts none of the rates {rates} as int16 input")

    def open(self) -> None:
        self.close()
        sd = self._sd()
        index = self._resolve(sd)
        rate, channels = self._settings(sd, index)
        o = self.options
        blocksize = rate * o.chunk_ms // 1000
        ring: queue.Queue[tuple[npt.NDArray[np.int16], int]] = queue.Queue(
            maxsize=max(2, int(o.ring_s * 1000 / o.chunk_ms))
        )

        def callback(indata: npt.NDArray[np.int16], frames: int, time_info: Any, status: Any) -> None:
            if status.input_overflow:
                self.overflows += 1
            try:
                ring.put_nowait((indata.copy(), time.monotonic_ns()))
            except queue.Full:
                self.ring_drops += 1

        try:
            stream = sd.InputStream(
                device=index,
                samplerate=rate,
                channels=channels,
                dtype="int16",
                blocksize=blocksize,
                latency=o.latency,
                callback=callback,
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(f"microphone {self.name}: cannot start input stream: {exc}") from None
        self._stream, self._ring = stream, ring
        self._resampler = StreamResampler(rate, o.sample_rate) if rate != o.sample_rate else None
        self._out = np.zeros(0, np.float32)
        self.device_label = f"{sd.query_devices(index)['name']} @ {rate} Hz x{channels}"
        logger.info("microphone %s: capturing from %s", self.name, self.device_label)

    def read(self, timeout: float) -> AudioChunk | None:
        if self._stream is None:
            raise DeviceError(f"microphone {self.name}: read before open")
        n = self.chunk_samples
        deadline = time.monotonic() + timeout
        while len(self._out) < n:
            try:
                block, stamp_ns = self._ring.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                if not self._stream.active:
                    raise DeviceError(f"microphone {self.name}: input stream stopped (device unplugged?)") from None
                return None
            mono = to_mono_float(block)
            if self._resampler is not None:
                mono = self._resampler.feed(mono)
            self._out = np.concatenate([self._out, mono])
            self._last_stamp_ns = stamp_ns
        samples, self._out = self._out[:n], self._out[n:]
        self._seq += 1
        lag_s = len(self._out) / self.options.sample_rate
        capture = Capture(self._seq, self._last_stamp_ns - int(lag_s * 1e9), time.time() - lag_s)
        return AudioChunk(
            source=self.name, capture=capture, samples=to_int16(samples), sample_rate=self.options.sample_rate
        )

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception as exc:  # a vanished device may fail to close; PortAudio frees it either way
                logger.debug("microphone %s: error closing: %s", self.name, exc)

    def describe(self) -> str:
        return f"sounddevice {self.device_label or self.options.device or 'default'}"
