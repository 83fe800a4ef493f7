"""Voice activity detection and utterance segmentation over 20–30 ms microphone chunks.

Recognisers should only see utterances: a segmenter re-frames whatever chunk
size the microphone delivers into fixed VAD frames, keeps a pre-roll ring so
the first syllable is not clipped, and closes an utterance after a stretch of
silence (or at a length cap). Whole utterances are what the speech pipeline
queues and, under load, drops.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
Int16Array = npt.NDArray[np.int16]


class FrameVad(Protocol):
    """Decides speech / not speech for one frame of ``frame_samples`` int16 samples."""

    frame_samples: int

    def is_speech(self, frame: Int16Array) -> bool: ...


class EnergyVad:
    """Speech when a frame's RMS stands ``ratio`` above a tracked noise floor; needs no library.

    The floor follows quiet frames slowly (and drops at once to anything quieter),
    so a fan or a fridge does not count as speech for long.
    """

    def __init__(self, frame_ms: int = 30, ratio: float = 3.0, min_rms: float = 200.0) -> None:
        self.frame_samples = SAMPLE_RATE * frame_ms // 1000
        self.ratio = ratio
        self.min_rms = min_rms
        self._floor = min_rms / ratio

    def is_speech(self, frame: Int16Array) -> bool:
        rms = float(np.sqrt(np.mean(frame.astype(np.float32) ** 2))) if len(frame) else 0.0
        speech = rms >= max(self.min_rms, self._floor * self.ratio)
        if not speech:
            self._floor = min(rms, 0.95 * self._floor + 0.05 * rms) if rms > 0 else self._floor
        return speech


class WebRtcVad:
    """The WebRTC GMM voice detector (``webrtcvad``), aggressiveness 0–3; 10/20/30 ms frames."""

    def __init__(self, frame_ms: int = 30, aggressiveness: int = 2) -> None:
        import webrtcvad

        if frame_ms not in (10, 20, 30):
            raise ValueError(f"webrtc VAD frames must be 10, 20 or 30 ms, not {frame_ms}")
        self.frame_samples = SAMPLE_RATE * frame_ms // 1000
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: Int16Array) -> bool:
        return bool(self._vad.is_speech(frame.tobytes(), SAMPLE_RATE))


def make_vad(kind: Literal["webrtc", "energy"], frame_ms: int = 30, aggressiveness: int = 2) -> FrameVad:
    """The configured VAD; ``webrtc`` falls back to ``energy`` where webrtcvad is not installed."""
    if kind == "webrtc":
        try:
            return WebRtcVad(frame_ms, aggressiveness)
        except ImportError:
            logger.warning("webrtcvad is not installed; using the energy VAD")
    return EnergyVad(frame_ms)


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of speech with its pre-roll: int16 samples and when it started and ended.

    ``end_mono_ns`` is the capture time of the chunk that closed it (end of
    speech plus the hangover), the reference for end-of-speech latency.
    """

    source: str
    samples: Int16Array
    start_wall: float
    end_mono_ns: int
    speech_end_mono_ns: int
    truncated: bool = False

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


class SegmentListener(Protocol):
    """Follows an utterance while it is open, so a recogniser can decode during speech."""

    def opened(self, samples: Int16Array) -> None:
        """An utterance began: its pre-roll and first voiced frames."""

    def audio(self, samples: Int16Array) -> None:
        """More audio of the open utterance (it will be closed or discarded later)."""

    def discarded(self) -> None:
        """The open utterance was a click (too little speech): forget it."""


class Segmenter:
    """Turns a stream of chunks into whole utterances.

    An utterance starts after ``start_frames`` consecutive speech frames
    (carrying ``pre_roll_ms`` of audio from before), ends after ``hangover_ms``
    without speech, and is cut at ``max_utterance_s`` (marked ``truncated``).
    Utterances shorter than ``min_speech_ms`` of speech are discarded as clicks.
    A ``listener`` sees each utterance's audio as it arrives; closed utterances
    are what ``push`` and ``flush`` return.
    """

    def __init__(
        self,
        source: str,
        vad: FrameVad,
        pre_roll_ms: int = 300,
        hangover_ms: int = 400,
        start_frames: int = 3,
        min_speech_ms: int = 200,
        max_utterance_s: float = 12.0,
        listener: SegmentListener | None = None,
    ) -> None:
        self.source = source
        self.listener = listener
        self.vad = vad
        n = vad.frame_samples
        frame_ms = 1000 * n // SAMPLE_RATE
        self._pre_roll: collections.deque[Int16Array] = collections.deque(maxlen=max(1, pre_roll_ms // frame_ms))
        self._hangover_frames = max(1, hangover_ms // frame_ms)
        self._start_frames = start_frames
        self._min_speech_frames = max(1, min_speech_ms // frame_ms)
        self._max_frames = int(max_utterance_s * 1000 / frame_ms)
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames: list[Int16Array] = []
        self._in_speech = False
        self._run = 0
        self._silence = 0
        self._speech_frames = 0
        self._start_wall = 0.0
        self._last_speech_ns = 0
        self._clock_ns = 0

    def push(self, samples: Int16Array, mono_ns: int, wall_time: float) -> list[Utterance]:
        """Add one chunk (its capture stamps are those of its first sample); return utterances it closed."""
        out: list[Utterance] = []
        n = self.vad.frame_samples
        buf = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        pending_ns = len(self._pending) * 1_000_000_000 // SAMPLE_RATE
        offset = 0
        while offset + n <= len(buf):
            frame = buf[offset : offset + n]
            frame_ns = mono_ns - pending_ns + offset * 1_000_000_000 // SAMPLE_RATE
            frame_wall = wall_time + (frame_ns - mono_ns) / 1e9
            utt = self._frame(frame, frame_ns, frame_wall)
            if utt is not None:
                out.append(utt)
            offset += n
        self._pending = buf[offset:].copy()
        return out

    def _frame(self, frame: Int16Array, mono_ns: int, wall: float) -> Utterance | None:
        speech = self.vad.is_speech(frame)
        end_ns = mono_ns + len(frame) * 1_000_000_000 // SAMPLE_RATE
        self._clock_ns = end_ns
        if not self._in_speech:
            self._pre_roll.append(frame)
            self._run = self._run + 1 if speech else 0
            if self._run >= self._start_frames:
                self._in_speech = True
                self._frames = list(self._pre_roll)
                self._pre_roll.clear()
                self._start_wall = wall - (len(self._frames) - 1) * len(frame) / SAMPLE_RATE
                self._silence = 0
                self._speech_frames = self._run
                self._last_speech_ns = end_ns
                if self.listener is not None:
                    self.listener.opened(np.concatenate(self._frames))
            return None
        self._frames.append(frame)
        if self.listener is not None:
            self.listener.audio(frame)
        if speech:
            self._silence = 0
            self._speech_frames += 1
            self._last_speech_ns = end_ns
        else:
            self._silence += 1
        if self._silence >= self._hangover_frames:
            return self._close(end_ns, truncated=False)
        if len(self._frames) >= self._max_frames:
            return self._close(end_ns, truncated=True)
        return None

    def _close(self, end_ns: int, truncated: bool) -> Utterance | None:
        frames, speech_frames = self._frames, self._speech_frames
        self._frames, self._in_speech, self._run, self._speech_frames = [], False, 0, 0
        if speech_frames < self._min_speech_frames:
            if self.listener is not None:
                self.listener.discarded()
            return None
        return Utterance(
            source=self.source,
            samples=np.concatenate(frames),
            start_wall=self._start_wall,
            end_mono_ns=end_ns,
            speech_end_mono_ns=self._last_speech_ns,
            truncated=truncated,
        )

    def flush(self) -> Utterance | None:
        """The source ended: close an open utterance (end of file counts as end of speech)."""
        if not self._in_speech:
            return None
        if len(self._pending):
            self._frames.append(self._pending)
            if self.listener is not None:
                self.listener.audio(self._pending)
            self._pending = np.zeros(0, dtype=np.int16)
        return self._close(self._clock_ns, truncated=False)
