"""The speech pipeline for one microphone: VAD in the worker, recognition on its own thread.

``process`` only segments chunks (cheap, keeps up with any microphone). When
the VAD opens an utterance it becomes a job in a bounded queue, and its audio
follows into the job as it is spoken; the recogniser thread streams it into
the recognisers (vosk decodes during speech, so only the tail is left when
speech ends), then matches intents and applies the cool-down. When the queue
is full as an utterance opens, that utterance is dropped whole and counted,
so under load the pipeline loses utterances, never halves of them. With
``when_busy: wait`` (replay at full speed) it blocks instead, so runs are
deterministic.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.events import EventBody
from agent.pipelines.speech.events import SpeechIntent
from agent.pipelines.speech.intents import IntentMatch, IntentMatcher
from agent.pipelines.stage import Stage
from drivers.base import AudioChunk
from models.speech.recognizers import Recognizer, Transcript
from models.speech.vad import Segmenter, Utterance

logger = logging.getLogger(__name__)

_STOP = object()
MIN_PIECE = 1600  # samples (100 ms): the recogniser thread wakes for this much new audio, or the end


class _Job:
    """One utterance handed from the segmenting worker to the recogniser thread while it is spoken."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pieces: list[npt.NDArray[np.int16]] = []
        self._queued = 0
        self._utterance: Utterance | None = None
        self._discarded = False

    def add(self, samples: npt.NDArray[np.int16]) -> None:
        with self._cond:
            self._pieces.append(samples)
            self._queued += len(samples)
            if self._queued >= MIN_PIECE:
                self._cond.notify()

    def close(self, utterance: Utterance) -> None:
        with self._cond:
            self._utterance = utterance
            self._cond.notify()

    def discard(self) -> None:
        with self._cond:
            self._discarded = True
            self._cond.notify()

    def take(self) -> tuple[npt.NDArray[np.int16] | None, Utterance | None, bool]:
        """Wait for audio or the end: (new audio, the closed utterance or None, discarded)."""
        with self._cond:
            self._cond.wait_for(lambda: self._queued >= MIN_PIECE or self._utterance is not None or self._discarded)
            audio = np.concatenate(self._pieces) if self._pieces else None
            self._pieces, self._queued = [], 0
            return audio, self._utterance, self._discarded


@dataclass(frozen=True)
class UtteranceResult:
    """Everything known about one utterance, for ``listen`` and benchmarks (never sent as an event)."""

    microphone: str
    utterance: Utterance
    transcripts: list[Transcript]
    match: IntentMatch | None
    emitted: bool
    latency_s: float
    """From the end of speech (last voiced frame) to the decision."""

    @property
    def best(self) -> Transcript | None:
        return max(self.transcripts, key=lambda t: t.confidence, default=None)


@dataclass
class SpeechStats:
    utterances: int = 0
    dropped_utterances: int = 0
    recognised: int = 0
    intents: int = 0
    cooled_down: int = 0
    truncated: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {k: v for k, v in vars(self).items() if isinstance(v, int)}


class SpeechStage(Stage[AudioChunk]):
    """Utterances from one microphone → ``speech.intent`` events (also the segmenter's listener)."""

    def __init__(
        self,
        source: str,
        segmenter: Segmenter,
        recognizers: Callable[[], list[Recognizer]],
        matcher: IntentMatcher,
        *,
        max_pending: int = 2,
        when_busy: str = "drop",
        include_transcript: bool = False,
        member_at_terminal: Callable[[], str | None] | None = None,
        on_result: Callable[[UtteranceResult], None] | None = None,
    ) -> None:
        super().__init__("speech", source)
        self.segmenter = segmenter
        segmenter.listener = self
        self._job: _Job | None = None
        self._job_dropped = False
        self.matcher = matcher
        self.stats = SpeechStats()
        self._make_recognizers = recognizers
        self._recognizers: list[Recognizer] = []
        self._pending: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._events: queue.Queue[EventBody] = queue.Queue()
        self._wait = when_busy == "wait"
        self._include_transcript = include_transcript
        self._member = member_at_terminal
        self._on_result = on_result
        self._last_emit: dict[str, float] = {}
        self._thread: threading.Thread | None = None

    def warm_up(self) -> None:
        self._recognizers = self._make_recognizers()
        silence = np.zeros(8000, dtype=np.int16)
        for rec in self._recognizers:
            rec.recognize(silence)
        self._thread = threading.Thread(target=self._run, name=f"speech-{self.source}", daemon=True)
        self._thread.start()

    def process(self, item: AudioChunk) -> Iterable[EventBody]:
        # 16 kHz is checked with the config (microphones[].sample_rate); the drivers resample to it.
        for utterance in self.segmenter.push(item.samples, item.capture.mono_ns, item.capture.wall_time):
            self._submit(utterance)
        return self._drain()

    def opened(self, samples: npt.NDArray[np.int16]) -> None:
        """The segmenter opened an utterance: queue it as a job now, or drop it whole if the queue is full."""
        if self._thread is None:
            raise RuntimeError("SpeechStage.warm_up() was not called")
        job = _Job()
        try:
            self._pending.put(job, block=self._wait)
        except queue.Full:
            self._job, self._job_dropped = None, True
            return
        job.add(samples)
        self._job, self._job_dropped = job, False

    def audio(self, samples: npt.NDArray[np.int16]) -> None:
        if self._job is not None:
            self._job.add(samples)

    def discarded(self) -> None:
        if self._job is not None:
            self._job.discard()
        self._job, self._job_dropped = None, False

    def _submit(self, utterance: Utterance) -> None:
        """The segmenter closed an utterance: the job's recogniser may finish it."""
        self.stats.add(utterances=1, truncated=int(utterance.truncated))
        job, dropped = self._job, self._job_dropped
        self._job, self._job_dropped = None, False
        if job is not None:
            job.close(utterance)
        elif dropped:
            self.stats.add(dropped_utterances=1)
            self.logger.warning(
                "recogniser busy: dropped a whole %.1f s utterance (%d dropped so far)",
                utterance.duration_s,
                self.stats.dropped_utterances,
            )

    def health(self) -> dict[str, Any]:
        """Utterances seen, dropped whole, recognised, intents emitted and held back by the cool-down."""
        return self.stats.snapshot()

    def _drain(self) -> list[EventBody]:
        out: list[EventBody] = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def finish(self) -> Iterable[EventBody]:
        last = self.segmenter.flush()
        if last is not None:
            self._submit(last)
        self._pending.join()
        return self._drain()

    def close(self) -> None:
        """Stop the recogniser thread; an utterance still open (the agent stopped mid-speech) is abandoned."""
        if self._job is not None:
            self._job.discard()
            self._job = None
        if self._thread is not None:
            self._pending.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._pending.get()
            try:
                if item is _STOP:
                    return
                self._handle(item)
            except Exception:
                self.logger.exception("recognition of an utterance failed")
            finally:
                self._pending.task_done()

    def _handle(self, job: _Job) -> None:
        streams = [rec.start() for rec in self._recognizers]
        while True:
            audio, utterance, discarded = job.take()
            if discarded:
                return
            if audio is not None:
                for stream in streams:
                    stream.accept(audio)
            if utterance is not None:
                break
        transcripts = [stream.result() for stream in streams]
        self.stats.add(recognised=1)
        best: IntentMatch | None = None
        best_transcript: Transcript | None = None
        for transcript in transcripts:
            found = self.matcher.match(transcript.text, transcript.language, transcript.confidence)
            if found and (best is None or found.confidence > best.confidence):
                best, best_transcript = found, transcript
        emitted = False
        if best is not None and best_transcript is not None:
            emitted = self._emit(best, best_transcript, utterance)
        latency = (time.monotonic_ns() - utterance.speech_end_mono_ns) / 1e9
        if self._on_result is not None:
            self._on_result(UtteranceResult(self.source, utterance, transcripts, best, emitted, latency))

    def _emit(self, match: IntentMatch, transcript: Transcript, utterance: Utterance) -> bool:
        now = time.monotonic()
        cooldown = self.matcher.intents[match.intent].cooldown_s
        last = self._last_emit.get(match.intent)
        if last is not None and now - last < cooldown:
            self.stats.add(cooled_down=1)
            return False
        self._last_emit[match.intent] = now
        self.stats.add(intents=1)
        self._events.put(
            SpeechIntent(
                captured_at=utterance.start_wall,
                intent=match.intent,
                slots=match.slots,
                language=match.language,
                confidence=round(match.confidence, 3),
                microphone=self.source,
                engine=transcript.engine,
                duration_s=round(utterance.duration_s, 2),
                member_id=self._member() if self._member else None,
                transcript=transcript.text if self._include_transcript else None,
            )
        )
        return True
