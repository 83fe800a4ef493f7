"""Speech recognisers behind one small interface: whole utterance in, transcript with confidence out.

``vosk`` streams an utterance through a Kaldi recogniser in 200 ms blocks,
either free or constrained to a grammar (the store's intent phrases); it is
the engine for a Raspberry Pi. ``whisper`` runs faster-whisper (CTranslate2,
int8) with a window fitted to the utterance instead of Whisper's fixed 30 s,
which is what makes short phrases affordable on a CPU. Models are loaded once
per process and shared by every microphone that uses them.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from models.manifest import ModelError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
_models: dict[tuple[str, str, int], Any] = {}
_models_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Transcript:
    """What a recogniser heard in one utterance. ``confidence`` is in [0, 1]."""

    text: str
    language: str
    confidence: float
    engine: str
    audio_s: float
    decode_s: float

    @property
    def rtf(self) -> float:
        """Real-time factor: decode time over audio time (below 1 keeps up with a microphone)."""
        return self.decode_s / self.audio_s if self.audio_s > 0 else 0.0


class Recognizer(Protocol):
    """Recognises one whole utterance of 16 kHz mono int16 samples. Not thread-safe: one per worker."""

    engine: str
    language: str

    def recognize(self, samples: npt.NDArray[np.int16]) -> Transcript: ...


def _shared(kind: str, path: Path, threads: int, factory: Any) -> Any:
    key = (kind, str(path.resolve()), threads)
    with _models_lock:
        if key not in _models:
            started = time.perf_counter()
            _models[key] = factory()
            logger.info("%s model loaded from %s in %.1f s", kind, path, time.perf_counter() - started)
        return _models[key]


class VoskRecognizer:
    """Kaldi recognition through vosk; ``grammar`` restricts output to those phrases (plus ``[unk]``)."""

    engine = "vosk"

    def __init__(self, model_dir: Path, language: str, grammar: Sequence[str] | None = None) -> None:
        import vosk

        vosk.SetLogLevel(-1)
        if not (model_dir / "am" / "final.mdl").is_file() and not (model_dir / "final.mdl").is_file():
            raise ModelError(f"{model_dir} does not look like a Vosk model directory (no am/final.mdl)")
        self.language = language
        self._model = _shared("vosk", model_dir, 0, lambda: vosk.Model(str(model_dir)))
        self.grammar: list[str] | None = None
        if grammar is not None:
            self.grammar = self._usable_phrases(grammar)
            if not self.grammar:
                raise ValueError(f"none of the grammar phrases has all its words in the Vosk model {model_dir.name}")
        self._vosk = vosk

    def _known(self, word: str) -> bool:
        return bool(self._model.vosk_model_find_word(word) >= 0)

    def _split(self, word: str) -> list[str] | None:
        """``word`` as the fewest model words (신발은 → 신발 은, 鞋子在哪里 → 鞋子 在 哪里), or None."""
        if self._known(word):
            return [word]
        best: list[list[str] | None] = [[]] + [None] * len(word)
        for end in range(1, len(word) + 1):
            for start in range(max(0, end - 8), end):
                head = best[start]
                if head is not None and self._known(word[start:end]):
                    candidate = [*head, word[start:end]]
                    current = best[end]
                    if current is None or len(candidate) < len(current):
                        best[end] = candidate
        return best[len(word)]

    def _usable_phrases(self, phrases: Sequence[str]) -> list[str]:
        """Phrases in the model's own words; Vosk silently ignores unknown words, so skip and say which."""
        usable: list[str] = []
        for phrase in dict.fromkeys(p.strip().lower() for p in phrases if p.strip()):
            pieces = [self._split(w) for w in phrase.split()]
            missing = [w for w, piece in zip(phrase.split(), pieces, strict=True) if piece is None]
            if missing:
                logger.debug("grammar phrase %r skipped: the model lacks %s", phrase, ", ".join(missing))
            else:
                usable.append(" ".join(w for piece in pieces for w in piece or []))
        logger.info("vosk grammar: %d of %d phrases usable with this model", len(usable), len(phrases))
        if usable and self._known("[unk]"):
            usable.append("[unk]")
        return usable

    def recognize(self, samples: npt.NDArray[np.int16]) -> Transcript:
        started = time.perf_counter()
        if self.grammar is not None:
            rec = self._vosk.KaldiRecognizer(self._model, SAMPLE_RATE, json.dumps(self.grammar, ensure_ascii=False))
        else:
            rec = self._vosk.KaldiRecognizer(self._model, SAMPLE_RATE)
        rec.SetWords(True)
        words: list[dict[str, Any]] = []
        block = SAMPLE_RATE // 5
        data = np.ascontiguousarray(samples, dtype=np.int16)
        for i in range(0, len(data), block):
            if rec.AcceptWaveform(data[i : i + block].tobytes()):
                words.extend(json.loads(rec.Result()).get("result", []))
        words.extend(json.loads(rec.FinalResult()).get("result", []))
        known = [w for w in words if w.get("word") != "[unk]"]
        text = " ".join(str(w["word"]) for w in known)
        # Unknown words count as zero confidence so a grammar cannot force a match on other speech.
        confidence = sum(float(w.get("conf", 0.0)) for w in known) / len(words) if words else 0.0
        return Transcript(
            text=text,
            language=self.language,
            confidence=confidence,
            engine=self.engine,
            audio_s=len(data) / SAMPLE_RATE,
            decode_s=time.perf_counter() - started,
        )


ZH_PROMPT = "以下是普通话的句子。"


class WhisperRecognizer:
    """Whisper base through faster-whisper (int8 on CPU); ``language`` None detects zh/en per utterance.

    ``fit_window`` sizes the encoder window to the utterance (rounded up to a
    whole second plus one) instead of padding every phrase to 30 s. A Mandarin
    prompt keeps output in Simplified characters.
    """

    engine = "whisper"

    def __init__(
        self,
        model_dir: Path,
        language: str | None,
        threads: int = 2,
        beam_size: int = 1,
        fit_window: bool = True,
    ) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ModelError("the whisper engine needs faster-whisper: pip install 'faster-whisper==1.2.1'") from exc
        if not (model_dir / "model.bin").is_file():
            raise ModelError(f"{model_dir} does not hold a CTranslate2 Whisper model (no model.bin)")
        self.language = language or "auto"
        self._language = language
        self._beam_size = beam_size
        self._fit_window = fit_window
        self._model = _shared(
            "whisper",
            model_dir,
            threads,
            lambda: WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads),
        )

    def recognize(self, samples: npt.NDArray[np.int16]) -> Transcript:
        started = time.perf_counter()
        audio = samples.astype(np.float32) / 32768.0
        kwargs: dict[str, Any] = {}
        if self._fit_window:
            kwargs["chunk_length"] = min(30, math.ceil(len(audio) / SAMPLE_RATE) + 1)
        segments, info = self._model.transcribe(
            audio,
            language=self._language,
            beam_size=self._beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=ZH_PROMPT if self._language == "zh" else None,
            **kwargs,
        )
        texts: list[str] = []
        logprob = no_speech = 0.0
        tokens = 0
        for seg in segments:
            texts.append(seg.text.strip())
            n = max(1, len(seg.tokens))
            logprob += seg.avg_logprob * n
            no_speech += seg.no_speech_prob * n
            tokens += n
        # Mean token probability, discounted by how likely Whisper thinks the window holds no speech.
        confidence = math.exp(logprob / tokens) * (1.0 - no_speech / tokens) if tokens else 0.0
        language = self._language or str(info.language)
        joiner = "" if language in ("zh", "ja") else " "
        return Transcript(
            text=joiner.join(t for t in texts if t),
            language=language,
            confidence=min(1.0, confidence),
            engine=self.engine,
            audio_s=len(audio) / SAMPLE_RATE,
            decode_s=time.perf_counter() - started,
        )
