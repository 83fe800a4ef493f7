"""PocketSphinx, the English engine whose real model ships in its wheel: keyphrase intents and free transcripts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent.pipelines.speech.evaluation import error_rate, librivox_refs
from agent.pipelines.speech.events import SpeechIntent
from tests.conftest import require_data
from tests.speech.conftest import feed, load, with_silence

pytest.importorskip("pocketsphinx", reason="the pocketsphinx engine needs the pocketsphinx package")

from models.speech.sphinx import PocketSphinxRecognizer

EN_INTENTS: list[dict[str, Any]] = [
    {"name": "go_forward", "phrases": {"en": ["go forward {n} meters"]}, "slots": {"n": ["five", "ten"]}},
    {"name": "ask_location", "phrases": {"en": ["where are the {item}"]}, "slots": {"item": ["shoes", "socks"]}},
]


@pytest.fixture(scope="session")
def sphinx_free() -> PocketSphinxRecognizer:
    return PocketSphinxRecognizer(None, "en")


def test_keyphrase_intent_through_the_streaming_pipeline(run_pipeline: Callable[..., Any]) -> None:
    """goforward.wav gives its intent; Mandarin and an unrelated English sentence spot nothing."""
    settings = {"recognizers": [{"engine": "pocketsphinx", "mode": "grammar"}], "intents": EN_INTENTS}
    pipeline, results = run_pipeline(settings, when_busy="wait")
    audio = with_silence(
        load("en/goforward.wav"), load("zh/funasr_zh.wav"), load("en/sense_and_sensibility_01_austen_64kb-0880.wav")
    )
    events = feed(pipeline, audio)
    intents = [(e.intent, e.slots, e.engine) for e in events if isinstance(e, SpeechIntent)]
    assert intents == [("go_forward", {"n": "ten"}, "pocketsphinx")]
    assert len(results) >= 3 and results[0].best is not None and results[0].best.confidence > 0.8
    for r in results:
        heard = r.best.text if r.best else ""
        print(f"\n{r.utterance.duration_s:.1f} s heard {heard!r} latency {r.latency_s * 1000:.0f} ms")


def test_free_mode_transcribes_go_forward(sphinx_free: PocketSphinxRecognizer) -> None:
    heard = sphinx_free.recognize(load("en/goforward.wav"))
    print(f"\ngoforward (pocketsphinx free): {heard.text!r} conf {heard.confidence:.2f} rtf {heard.rtf:.2f}")
    assert heard.text == "go forward ten meters" and heard.engine == "pocketsphinx"


def test_unknown_keyphrase_words_are_skipped_not_silently_ignored() -> None:
    rec = PocketSphinxRecognizer(None, "en", ["go forward 10 meters", "where are the shoes"])
    assert rec.keyphrases == ["where are the shoes"]  # the dictionary has no digits: numbers go as words
    with pytest.raises(ValueError, match="none of the keyphrases"):
        PocketSphinxRecognizer(None, "en", ["xqzzy blorft"])


@pytest.mark.slow
def test_librivox_word_error_rate_free_mode(sphinx_free: PocketSphinxRecognizer) -> None:
    refs = librivox_refs(require_data("media/speech/en"))
    pairs = []
    for ident, ref in refs.items():
        heard = sphinx_free.recognize(load(f"en/{ident}.wav"))
        pairs.append((ref, heard.text))
        print(f"\n{ident}: {heard.text!r} rtf {heard.rtf:.2f}")
    wer = error_rate(pairs, "en")
    print(f"LibriVox WER (pocketsphinx en-us, trigram LM): {wer:.3f}")
    assert wer <= 0.45  # measured 0.367 (whisper base: see test_whisper)
