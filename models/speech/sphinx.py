"""English recognition with CMU PocketSphinx: keyphrase spotting for intents, a trigram model for transcripts.

The ``pocketsphinx`` wheel carries a real US English acoustic model, a
general trigram language model and the CMU dictionary, so this engine works
offline with nothing to fetch. In ``grammar`` mode it spots the intents'
phrases (keyword search: other speech spots nothing instead of being forced
onto a phrase); in ``free`` mode it transcribes with the trigram model (slow
and less accurate than whisper, see docs/speech.md). Decoding is streaming:
audio is processed as it arrives.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.manifest import ModelError
from models.speech.recognizers import SAMPLE_RATE, Transcript

logger = logging.getLogger(__name__)

WHEEL_MODEL = "pocketsphinx-en-us"
"""Model name meaning the US English model inside the pocketsphinx wheel."""
_FILLER = re.compile(r"^(<s>|</s>|<sil>|\[[A-Z_]+\]|\+\+.*\+\+)$")


def wheel_model_dir() -> Path:
    """The en-us model folder shipped in the pocketsphinx wheel."""
    try:
        import pocketsphinx
    except ImportError as exc:
        raise ModelError("the pocketsphinx engine needs its package: pip install 'pocketsphinx==5.1.1'") from exc
    return Path(pocketsphinx.get_model_path()) / "en-us"


class PocketSphinxRecognizer:
    """PocketSphinx for one language; ``keyphrases`` switches from transcription to spotting those phrases."""

    engine = "pocketsphinx"

    def __init__(
        self,
        model_dir: Path | None,
        language: str = "en",
        keyphrases: Sequence[str] | None = None,
        threshold: float = 1e-20,
    ) -> None:
        import pocketsphinx

        folder = model_dir or wheel_model_dir()
        hmm, lm, dic = folder / "en-us", folder / "en-us.lm.bin", folder / "cmudict-en-us.dict"
        for needed in (hmm / "mdef", lm, dic):
            if not needed.exists():
                raise ModelError(f"{folder} is not a PocketSphinx model folder: {needed.name} is missing")
        self.language = language
        self._open = False
        self._decoder: Any = pocketsphinx.Decoder(hmm=str(hmm), lm=str(lm), dict=str(dic), loglevel="FATAL")
        self.keyphrases: list[str] | None = None
        if keyphrases is not None:
            self.keyphrases = self._usable(keyphrases)
            if not self.keyphrases:
                raise ValueError(f"none of the keyphrases has all its words in the dictionary {dic}")
            with tempfile.NamedTemporaryFile("w", suffix=".kws", encoding="utf-8", delete=False) as kws:
                kws.write("".join(f"{p} /{threshold:g}/\n" for p in self.keyphrases))
            self._decoder.add_kws("intents", kws.name)
            self._decoder.activate_search("intents")
            Path(kws.name).unlink()

    def _usable(self, phrases: Sequence[str]) -> list[str]:
        """Phrases whose words are all in the dictionary (it has no digits: write numbers as words)."""
        usable: list[str] = []
        for phrase in dict.fromkeys(" ".join(p.lower().split()) for p in phrases if p.strip()):
            missing = [w for w in phrase.split() if self._decoder.lookup_word(w) is None]
            if missing:
                logger.warning("keyphrase %r skipped: the dictionary lacks %s", phrase, ", ".join(missing))
            else:
                usable.append(phrase)
        logger.info("pocketsphinx keyphrases: %d of %d usable", len(usable), len(phrases))
        return usable

    def start(self) -> SphinxStream:
        if self._open:  # the last utterance was discarded (a click) before its result
            self._decoder.end_utt()
        self._decoder.start_utt()
        self._open = True
        return SphinxStream(self)

    def recognize(self, samples: npt.NDArray[np.int16]) -> Transcript:
        """A whole utterance at once: its cepstral mean comes from all of it.

        The live mean that streams adapt from is saved and restored around it,
        so a warm-up on silence or a batch call does not skew the microphone's.
        """
        live_mean = self._decoder.get_cmn()
        try:
            stream = self.start()
            stream.accept(samples, whole=True)
            return stream.result()
        finally:
            self._decoder.set_cmn(live_mean)


class SphinxStream:
    """One utterance on the decoder; confidence is the mean word (or phrase) posterior."""

    def __init__(self, recognizer: PocketSphinxRecognizer) -> None:
        self._recognizer = recognizer
        self._decoder = recognizer._decoder
        self._samples = 0
        self._busy_s = 0.0

    def accept(self, samples: npt.NDArray[np.int16], whole: bool = False) -> None:
        started = time.perf_counter()
        self._decoder.process_raw(np.ascontiguousarray(samples, dtype=np.int16).tobytes(), False, whole)
        self._samples += len(samples)
        self._busy_s += time.perf_counter() - started

    def result(self) -> Transcript:
        started = time.perf_counter()
        self._decoder.end_utt()
        self._recognizer._open = False
        words: list[tuple[str, float]] = []
        for seg in self._decoder.seg() or []:
            word = re.sub(r"\(\d+\)$", "", str(seg.word)).strip()
            if word and not _FILLER.match(word):
                words.append((word, float(seg.prob)))
        confidence = sum(p for _, p in words) / len(words) if words else 0.0
        return Transcript(
            text=" ".join(w for w, _ in words),
            language=self._recognizer.language,
            confidence=min(1.0, max(0.0, confidence)),
            engine="pocketsphinx",
            audio_s=self._samples / SAMPLE_RATE,
            decode_s=self._busy_s + time.perf_counter() - started,
        )
