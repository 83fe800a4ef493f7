"""Segmentation of real speech into utterances: pre-roll kept, gaps split, chunk size irrelevant."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent.pipelines.speech.build import make_segmenter
from agent.pipelines.speech.settings import VadSettings
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


def segment_with(samples: np.ndarray, **vad: Any) -> list[Utterance]:
    """Utterances of ``samples`` through the segmenter the speech pipeline builds from ``VadSettings(**vad)``."""
    segmenter = make_segmenter("mic", VadSettings(**vad))
    out: list[Utterance] = []
    for i, block in enumerate(chunks(samples, 30)):
        out += segmenter.push(block, i * 30_000_000, 1000.0 + i * 0.03)
    last = segmenter.flush()
    return out + ([last] if last else [])


def test_vad_kind_and_aggressiveness_decide_what_noise_counts_as_speech() -> None:
    """Two seconds of hiss between silences: the energy VAD takes it for speech, WebRTC's model does not
    (``kind``); louder hiss passes WebRTC at ``aggressiveness`` 0 and not at 3."""
    rng = np.random.default_rng(0)
    silence = np.zeros(SAMPLE_RATE, np.int16)

    def hiss(level: float) -> np.ndarray:
        return np.concatenate([silence, (rng.normal(size=2 * SAMPLE_RATE) * level).astype(np.int16), silence])

    quiet, louder = hiss(300), hiss(1000)
    assert len(segment_with(quiet, kind="energy")) == 1 and segment_with(quiet, kind="webrtc") == []
    assert len(segment_with(louder, kind="webrtc", aggressiveness=0)) == 1
    assert segment_with(louder, kind="webrtc", aggressiveness=3) == []


def test_vad_frame_pre_roll_hangover_min_speech_and_max_utterance() -> None:
    """``frame_ms`` is the unit utterances are cut in, ``pre_roll_ms`` the audio kept from before speech starts,
    ``hangover_ms`` the silence that ends an utterance, ``min_speech_ms`` the least speech kept,
    ``max_utterance_s`` where long speech is cut."""
    forward = load("en/goforward.wav")
    for frame_ms in (10, 20, 30):
        (utterance,) = segment_with(with_silence(forward), frame_ms=frame_ms)
        assert len(utterance.samples) % (SAMPLE_RATE * frame_ms // 1000) == 0
        assert frame_ms == 30 or len(utterance.samples) % 480 != 0  # not cut in the default 30 ms frames
    (short,) = segment_with(with_silence(forward), pre_roll_ms=0)
    (long,) = segment_with(with_silence(forward), pre_roll_ms=600)
    assert short.start_wall - long.start_wall == pytest.approx(0.57, abs=0.001)  # 19 more 30 ms frames kept
    two = with_silence(forward, load("synth/en_where_shoes.wav"), gap_s=0.6)
    assert len(segment_with(two, hangover_ms=300)) == 2 and len(segment_with(two, hangover_ms=1500)) == 1
    burst = with_silence(forward[int(0.2 * SAMPLE_RATE) : int(0.6 * SAMPLE_RATE)])  # 0.4 s of the sentence
    assert len(segment_with(burst, min_speech_ms=100)) == 1 and segment_with(burst, min_speech_ms=1000) == []
    talk = np.concatenate([load("en/vosk_test_en.wav")] * 2)  # about 16 s of speech
    cut = {limit: segment_with(talk, max_utterance_s=limit, hangover_ms=2000) for limit in (3.0, 12.0)}
    assert [u.duration_s for u in cut[3.0] if u.truncated] == [3.0] * 5
    assert [u.duration_s for u in cut[12.0] if u.truncated] == [12.0]
