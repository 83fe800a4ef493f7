"""Segmentation of real speech into utterances: pre-roll kept, gaps split, chunk size irrelevant."""

from __future__ import annotations

import numpy as np
import pytest

from models.speech.audio import SAMPLE_RATE, chunks
from models.speech.vad import EnergyVad, Segmenter, Utterance, make_vad
from tests.speech.conftest import load, with_silence


def segment(samples: np.ndarray, vad_kind: str, chunk_ms: int = 30) -> list[Utterance]:
    seg = Segmenter("mic", make_vad(vad_kind))  # type: ignore[arg-type]
    out: list[Utterance] = []
    for i, block in enumerate(chunks(samples, chunk_ms)):
        out += seg.push(block, i * chunk_ms * 1_000_000, 1000.0 + i * chunk_ms / 1000)
    last = seg.flush()
    return out + ([last] if last else [])


@pytest.mark.parametrize("vad_kind", ["webrtc", "energy"])
@pytest.mark.parametrize("chunk_ms", [20, 30])
def test_two_phrases_two_utterances_with_pre_roll(vad_kind: str, chunk_ms: int) -> None:
    forward = load("en/goforward.wav")
    shoes = load("synth/en_where_shoes.wav")
    audio = with_silence(forward, shoes, gap_s=1.2)
    utterances = segment(audio, vad_kind, chunk_ms)
    assert len(utterances) == 2
    first, second = utterances
    for utt in utterances:
        # Each utterance is an uncut copy of the stream from its start time ...
        start = round((utt.start_wall - 1000.0) * SAMPLE_RATE)
        assert np.array_equal(utt.samples, audio[start : start + len(utt.samples)])
        # ... beginning with quiet pre-roll from the ring, before the voice that opened it.
        lead, whole = utt.samples[:1440].astype(float), utt.samples.astype(float)
        assert np.sqrt(np.mean(lead**2)) < 0.5 * np.sqrt(np.mean(whole**2))
    # Both cover the speech: at least 80 % of the clip's length each.
    assert first.duration_s >= 0.8 * len(forward) / SAMPLE_RATE
    assert second.duration_s >= 0.8 * len(shoes) / SAMPLE_RATE
    assert not first.truncated and not second.truncated


def test_silence_and_clicks_make_no_utterance() -> None:
    audio = np.zeros(3 * SAMPLE_RATE, dtype=np.int16)
    audio[SAMPLE_RATE : SAMPLE_RATE + 80] = 20000  # a 5 ms click
    assert segment(audio, "webrtc") == []
    assert segment(audio, "energy") == []


def test_long_speech_is_cut_and_marked() -> None:
    long = np.concatenate([load("en/vosk_test_en.wav")] * 2)
    seg = Segmenter("mic", EnergyVad(), max_utterance_s=3.0, hangover_ms=2000)
    out: list[Utterance] = []
    for i, block in enumerate(chunks(long, 30)):
        out += seg.push(block, i * 30_000_000, float(i))
    assert any(u.truncated for u in out)
    assert all(u.duration_s <= 3.05 for u in out)
