"""Speech recognisers behind one small interface: whole utterance in, transcript with confidence out.

``vosk`` decodes an utterance while it is spoken (a stream fed by the
pipeline as the VAD passes frames), either free or constrained to a grammar
(the store's intent phrases); it is the engine for a Raspberry Pi. ``whisper`` runs faster-whisper (CTranslate2,
int8) with the encoder window fitted to the utterance instead of Whisper's
fixed 30 s, which is what makes short phrases affordable on a CPU. Models are loaded once
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


class RecognizerStream(Protocol):
    """One utterance being recognised while it is still being spoken."""

    def accept(self, samples: npt.NDArray[np.int16]) -> None:
        """More audio of the utterance (any length)."""

    def result(self) -> Transcript:
        """The utterance ended: what was heard."""
        ...


class Recognizer(Protocol):
    """Recognises utterances of 16 kHz mono int16 samples. Not thread-safe: one per worker, one stream at a time.

    ``start`` opens a stream for an utterance that has begun: streaming engines
    (vosk) decode each piece as it arrives so only the tail is left when speech
    ends; others buffer and decode in ``result``.
    """

    engine: str
    language: str

    def recognize(self, samples: npt.NDArray[np.int16]) -> Transcript: ...

    def start(self) -> RecognizerStream: ...


class BufferedStream:
    """The stream of an engine that needs the whole utterance: collect, then ``recognize`` once."""

    def __init__(self, recognizer: Recognizer) -> None:
        self._recognizer = recognizer
        self._parts: list[npt.NDArray[np.int16]] = []

    def accept(self, samples: npt.NDArray[np.int16]) -> None:
        self._parts.append(samples)

    def result(self) -> Transcript:
        samples = np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.int16)
        return self._recognizer.recognize(samples)


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
        self._decoder: Any = None

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

    def start(self) -> VoskStream:
        """A stream on this recogniser's one Kaldi decoder (the grammar is compiled once, then reset per utterance)."""
        if self._decoder is None:
            if self.grammar is not None:
                grammar = json.dumps(self.grammar, ensure_ascii=False)
                self._decoder = self._vosk.KaldiRecognizer(self._model, SAMPLE_RATE, grammar)
            else:
                self._decoder = self._vosk.KaldiRecognizer(self._model, SAMPLE_RATE)
            self._decoder.SetWords(True)
        else:
            self._decoder.Reset()
        return VoskStream(self._decoder, self.language)

    def recognize(self, samples: npt.NDArray[np.int16]) -> Transcript:
        stream = self.start()
        stream.accept(samples)
        return stream.result()


class VoskStream:
    """Feeds Kaldi as audio arrives; ``result`` only decodes what is left and reads the lattice."""

    BLOCK = SAMPLE_RATE // 5

    def __init__(self, decoder: Any, language: str) -> None:
        self._decoder = decoder
        self._language = language
        self._words: list[dict[str, Any]] = []
        self._samples = 0
        self._busy_s = 0.0

    def accept(self, samples: npt.NDArray[np.int16]) -> None:
        started = time.perf_counter()
        data = np.ascontiguousarray(samples, dtype=np.int16)
        for i in range(0, len(data), self.BLOCK):
            if self._decoder.AcceptWaveform(data[i : i + self.BLOCK].tobytes()):
                self._words.extend(json.loads(self._decoder.Result()).get("result", []))
        self._samples += len(data)
        self._busy_s += time.perf_counter() - started

    def result(self) -> Transcript:
        started = time.perf_counter()
        words = self._words + json.loads(self._decoder.FinalResult()).get("result", [])
        known = [w for w in words if w.get("word") != "[unk]"]
        # Unknown words count as zero confidence so a grammar cannot force a match on other speech.
        confidence = sum(float(w.get("conf", 0.0)) for w in known) / len(words) if words else 0.0
        return Transcript(
            text=" ".join(str(w["word"]) for w in known),
            language=self._language,
            confidence=confidence,
            engine="vosk",
            audio_s=self._samples / SAMPLE_RATE,
            decode_s=self._busy_s + time.perf_counter() - started,
        )


ZH_PROMPT = "以下是普通话的句子。"


def _confidence(avg_logprob: float, no_speech_prob: float) -> float:
    """Mean token probability; zero where Whisper's own rule calls the window silence.

    ``no_speech_prob`` alone is no multiplier: it reads 0.4-0.5 on clean short
    Mandarin commands, so it only counts together with a low log-probability
    (faster-whisper's thresholds 0.6 and -1).
    """
    if no_speech_prob > 0.6 and avg_logprob < -1.0:
        return 0.0
    return math.exp(avg_logprob)


MAX_FRAMES = 3000  # Whisper's 30 s window
MAX_PROMPT_TOKENS = 223  # Whisper's limit for previous text: n_text_ctx // 2 - 1


class WhisperRecognizer:
    """Whisper base through faster-whisper's CTranslate2 model (int8 on CPU); ``language`` None detects zh/en.

    faster-whisper pads every window to 30 s of log-Mel frames before the
    encoder, whatever the audio length, so a 2 s phrase costs as much as 30 s
    (4.8 s of encoder time on the 2-core VM). With ``fit_window`` (default) the
    encoder gets only the utterance plus 1 s of silence (0.2 s for a 2 s
    phrase) and decoding is greedy with a token budget proportional to the
    audio, which also stops repetition loops. ``fit_window: false`` keeps
    faster-whisper's own 30 s path for comparison. A Mandarin prompt keeps
    output in Simplified characters; ``prompt`` replaces it with the store's
    own words (models.speech.bias.build_prompt), which Whisper reads as text
    said before the utterance and so favours names it would otherwise miss.
    """

    engine = "whisper"

    def __init__(
        self,
        model_dir: Path,
        language: str | None,
        threads: int = 2,
        beam_size: int = 1,
        fit_window: bool = True,
        prompt: str | None = None,
    ) -> None:
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens
        except ImportError as exc:
            raise ModelError("the whisper engine needs faster-whisper: pip install 'faster-whisper==1.2.1'") from exc
        if not (model_dir / "model.bin").is_file():
            raise ModelError(f"{model_dir} does not hold a CTranslate2 Whisper model (no model.bin)")
        self.language = language or "auto"
        self._language = language
        self._beam_size = beam_size
        self._fit_window = fit_window
        self.prompt = prompt
        self._model = _shared(
            "whisper",
            model_dir,
            threads,
            lambda: WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads),
        )
        self._tokenizer_cls = Tokenizer
        self._suppressed = get_suppressed_tokens
        self._tokenizers: dict[str, Any] = {}

    def recognize(self, samples: npt.NDArray[np.int16]) -> Transcript:
        started = time.perf_counter()
        audio = samples.astype(np.float32) / 32768.0
        text, language, confidence = self._fitted(audio) if self._fit_window else self._full_window(audio)
        return Transcript(
            text=text,
            language=language,
            confidence=min(1.0, max(0.0, confidence)),
            engine=self.engine,
            audio_s=len(audio) / SAMPLE_RATE,
            decode_s=time.perf_counter() - started,
        )

    def start(self) -> BufferedStream:
        return BufferedStream(self)

    def _tokenizer(self, language: str) -> Any:
        if language not in self._tokenizers:
            self._tokenizers[language] = self._tokenizer_cls(
                self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe", language=language
            )
        return self._tokenizers[language]

    def _context(self, language: str) -> str | None:
        """Previous text for the decoder: the store prompt when given, else the Simplified-Chinese cue for zh."""
        if self.prompt:
            return self.prompt
        return ZH_PROMPT if language == "zh" else None

    def _fitted(self, audio: npt.NDArray[np.float32]) -> tuple[str, str, float]:
        import ctranslate2

        padded = np.concatenate([audio, np.zeros(SAMPLE_RATE, dtype=np.float32)])
        features = self._model.feature_extractor(padded)
        frames = min(MAX_FRAMES, features.shape[-1] - features.shape[-1] % 2)
        encoded = self._model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None, :, :frames])), to_cpu=False
        )
        language = self._language
        if language is None:
            best = self._model.model.detect_language(encoded)[0][0][0]
            language = str(best)[2:-2]
        tok = self._tokenizer(language)
        prompt: list[int] = []
        context = self._context(language)
        if context:
            # Whisper keeps at most half its 448-token text context for previous text; the end matters most.
            prompt = [tok.sot_prev, *tok.encode(" " + context)[-(MAX_PROMPT_TOKENS):]]
        prompt += [*tok.sot_sequence, tok.no_timestamps]
        budget = 12 + int(12 * len(audio) / SAMPLE_RATE)  # tokens: ~3-4 per Mandarin syllable second, 2-3 English
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=self._beam_size,
            max_length=min(448, len(prompt) + budget),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppressed(tok, (-1,)),
            repetition_penalty=1.1,
            no_repeat_ngram_size=4,
        )[0]
        ids = [t for t in result.sequences_ids[0] if t < tok.eot]
        text = tok.decode(ids).strip()
        avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1) if ids else -10.0
        return text, language, _confidence(avg_logprob, result.no_speech_prob) if ids else 0.0

    def _full_window(self, audio: npt.NDArray[np.float32]) -> tuple[str, str, float]:
        segments, info = self._model.transcribe(
            audio,
            language=self._language,
            beam_size=self._beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=self._context(self._language or ""),
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
        confidence = _confidence(logprob / tokens, no_speech / tokens) if tokens else 0.0
        language = self._language or str(info.language)
        joiner = "" if language in ("zh", "ja") else " "
        return joiner.join(t for t in texts if t), language, confidence
