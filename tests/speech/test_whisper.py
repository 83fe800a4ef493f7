"""Whisper base (faster-whisper, int8) on real Mandarin and English speech: accuracy figures and intents.

Figures are printed (run with -s) and asserted against loose floors so a
regression shows. Non-slow tests use a few short clips; the slow ones a fixed
30-utterance AISHELL subset and the FireRedASR clips. The full AISHELL set is
``bench/speech_accuracy.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.pipelines.speech.evaluation import aishell_refs, error_rate, fireredasr_refs, librivox_refs
from agent.pipelines.speech.intents import IntentMatcher
from agent.pipelines.speech.settings import IntentSpec
from models.speech.recognizers import WhisperRecognizer
from tests.conftest import require_data
from tests.speech.conftest import feed, load, with_silence

pytest.importorskip("faster_whisper", reason="the whisper engine is an optional extra (faster-whisper)")

AISHELL_INTENTS = [
    IntentSpec(
        name="set_temperature", phrases={"zh": ["设定{t}度", "设置{t}度"]}, slots={"t": [str(i) for i in range(16, 33)]}
    ),
    IntentSpec(name="raise_temperature", phrases={"zh": ["调高温度", "温度调高"]}),
    IntentSpec(name="play_song", phrases={"zh": ["想听歌曲", "来一首歌曲", "播放歌曲"]}),
]
AISHELL_EXPECTED = {
    "设定": "set_temperature",
    "调高温度": "raise_temperature",
    "想听歌曲": "play_song",
    "来一首歌曲": "play_song",
}
QUICK_AISHELL = [0, 2, 4, 5, 41, 100]  # positions in the sorted list: intents and other sentences
AISHELL_SUBSET = [*range(0, 112, 4), 5, 41]  # 30 fixed utterances for the slow test


@pytest.fixture(scope="session")
def whisper_dir(provisioned: Callable[[str], Path]) -> Path:
    return provisioned("whisper-base-ct2")


@pytest.fixture(scope="session")
def whisper_zh(whisper_dir: Path) -> WhisperRecognizer:
    return WhisperRecognizer(whisper_dir, "zh")


@pytest.fixture(scope="session")
def whisper_en(whisper_dir: Path) -> WhisperRecognizer:
    return WhisperRecognizer(whisper_dir, "en")


def test_librivox_word_error_rate(whisper_en: WhisperRecognizer) -> None:
    refs = librivox_refs(require_data("media/speech/en"))
    pairs = []
    for ident in ("sense_and_sensibility_01_austen_64kb-0880",):
        heard = whisper_en.recognize(load(f"en/{ident}.wav"))
        pairs.append((refs[ident], heard.text))
        print(f"\n{ident}: {heard.text!r} rtf={heard.rtf:.2f}")
    wer = error_rate(pairs, "en")
    print(f"LibriVox WER (whisper base int8): {wer:.3f}")
    assert wer <= 0.25


def test_go_forward_intent_in_english(whisper_dir: Path, run_pipeline: Callable[..., Any]) -> None:
    settings = {
        "recognizers": [{"engine": "whisper", "model": "whisper-base-ct2", "language": "en"}],
        "intents": [
            {"name": "go_forward", "phrases": {"en": ["go forward {n} meters"]}, "slots": {"n": ["five", "ten"]}}
        ],
    }
    pipeline, results = run_pipeline(settings, when_busy="wait")
    events = feed(pipeline, with_silence(load("en/goforward.wav")))
    assert [(e.intent, e.slots, e.engine) for e in events] == [("go_forward", {"n": "ten"}, "whisper")]  # type: ignore[attr-defined]
    print(f"\ngoforward: {results[0].best.text!r} latency {results[0].latency_s * 1000:.0f} ms")  # type: ignore[union-attr]


def test_opening_hours_intent_in_mandarin(whisper_dir: Path, run_pipeline: Callable[..., Any]) -> None:
    settings = {
        "recognizers": [{"engine": "whisper", "model": "whisper-base-ct2", "language": "zh"}],
        "intents": [
            {"name": "opening_hours", "phrases": {"zh": ["开放时间", "营业时间", "几点开门"]}},
            {"name": "compliment_smell", "phrases": {"zh": ["好香", "真香"]}},
        ],
    }
    pipeline, results = run_pipeline(settings, when_busy="wait")
    events = feed(pipeline, with_silence(load("zh/funasr_zh.wav")))
    assert [(e.intent, e.language) for e in events] == [("opening_hours", "zh")]  # type: ignore[attr-defined]
    print(f"\nfunasr_zh: {results[0].best.text!r}")  # type: ignore[union-attr]


def aishell_run(whisper_zh: WhisperRecognizer, ids: list[int]) -> tuple[float, float, int]:
    refs = aishell_refs(require_data("media/speech/zh/aishell"))
    matcher = IntentMatcher(AISHELL_INTENTS)
    pairs, correct = [], 0
    chosen = [sorted(refs)[i] for i in ids]
    for ident in chosen:
        heard = whisper_zh.recognize(load(f"zh/aishell/{ident}.wav"))
        pairs.append((refs[ident], heard.text))
        expected = next((v for k, v in AISHELL_EXPECTED.items() if refs[ident].startswith(k)), None)
        found = matcher.match(heard.text, "zh", heard.confidence)
        correct += (found.intent if found else None) == expected
        if (found.intent if found else None) != expected:
            print(f"\n  {ident}: {refs[ident]} heard {heard.text!r} conf {heard.confidence:.2f} -> {found}")
    return error_rate(pairs, "zh"), correct / len(chosen), len(chosen)


def test_aishell_quick_cer_and_intent_accuracy(whisper_zh: WhisperRecognizer) -> None:
    cer, accuracy, n = aishell_run(whisper_zh, QUICK_AISHELL)
    print(f"\nAISHELL subset of {n}: CER {cer:.3f}, intent accuracy {accuracy:.2f}")
    assert cer <= 0.25 and accuracy >= 0.8


@pytest.mark.slow
def test_aishell_subset_cer_and_intent_accuracy(whisper_zh: WhisperRecognizer) -> None:
    cer, accuracy, n = aishell_run(whisper_zh, AISHELL_SUBSET)
    print(f"\nAISHELL fixed subset of {n}: CER {cer:.3f}, intent accuracy {accuracy:.2f}")
    assert cer <= 0.25 and accuracy >= 0.8


@pytest.mark.slow
def test_fireredasr_cer(whisper_zh: WhisperRecognizer) -> None:
    pairs = []
    for ident, text in fireredasr_refs(require_data("media/speech/zh/fireredasr")).items():
        heard = whisper_zh.recognize(load(f"zh/fireredasr/{ident}.wav"))
        pairs.append((text, heard.text))
    cer = error_rate(pairs, "zh")
    print(f"\nFireRedASR clips: CER {cer:.3f}")
    assert cer <= 0.4
