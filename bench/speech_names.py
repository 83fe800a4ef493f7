"""Mandarin names: CER and intent accuracy per speaker split, with and without the store prompt and pinyin slots.

Splits (tests/speech/zh_sets.py): tuning = AISHELL-1 S0150 (shared data); reporting = AISHELL-1 S0913
(fetched, see that module) and four FireRedASR clips of other speakers. ``--tune`` sweeps the prompt's
character budget and the pinyin threshold on the tuning speaker only; the default run reports the chosen
settings (models.speech.bias.DEFAULT_MAX_CHARS, PINYIN_MIN below) on every split.
Run: ``python bench/speech_names.py [--tune] [--threads 2] [--errors]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.pipelines.speech.evaluation import error_rate
from models.speech.audio import read_wav
from models.speech.bias import DEFAULT_MAX_CHARS, build_prompt, store_terms
from models.speech.provision import default_cache_dir, fetch
from models.speech.recognizers import WhisperRecognizer
from tests.speech.zh_sets import NameMatcher, SpeakerSet, intent_accuracy, reporting_sets, tuning_set

DATA = (
    Path(os.environ.get("STORE_AGENT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "media/speech"
)
PINYIN_MIN = 0.8  # chosen on the tuning speaker (--tune)
MIN_CONFIDENCE = 0.3  # the intents' min_confidence, swept on the tuning speaker (IntentSpec's default is 0.5)


def decode(rec: WhisperRecognizer, speakers: SpeakerSet) -> tuple[list[tuple[str, str, float]], float]:
    """(reference, hypothesis, confidence) per utterance, and the median real-time factor."""
    out, rtfs = [], []
    for ident, ref in speakers.refs.items():
        heard = rec.recognize(read_wav(speakers.wav(ident)))
        out.append((ref, heard.text, heard.confidence))
        rtfs.append(heard.rtf)
    return out, statistics.median(rtfs)


def prompt_for(speakers: SpeakerSet, max_chars: int | None) -> str | None:
    if max_chars is None or not speakers.intents:
        return None
    return build_prompt(store_terms(speakers.intents, "zh"), "zh", max_chars)


def report(
    rec: WhisperRecognizer,
    speakers: SpeakerSet,
    max_chars: int | None,
    rules: list[tuple[float | None, float]],
    errors: bool,
) -> None:
    """Decode a split once with the prompt of ``max_chars``; print CER and intent accuracy per (pinyin, min conf)."""
    rec.prompt = prompt_for(speakers, max_chars)
    started = time.perf_counter()
    pairs, rtf = decode(rec, speakers)
    cer = error_rate([(r, h) for r, h, _ in pairs], "zh")
    label = "none" if max_chars is None else f"{max_chars} chars"
    line = f"{speakers.part:<9} {speakers.name:<16} n={len(pairs):>3}  prompt {label:<9} CER {cer:.3f}"
    for threshold, min_confidence in rules if speakers.intents else []:
        matcher = NameMatcher(speakers.intents, threshold, min_confidence)
        show = (lambda r, h, w, g: print(f"    {r} | {h} | want {w} got {g}")) if errors else None
        accuracy, _ = intent_accuracy(matcher, pairs, show)
        rule = "chars" if threshold is None else f"pinyin>={threshold}"
        line += f"\n    intents {rule:<12} min_conf {min_confidence:.2f}: {accuracy:.3f}"
    print(f"{line}  RTF {rtf:.2f} ({time.perf_counter() - started:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tune", action="store_true", help="sweep budgets and thresholds on the tuning speaker")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--errors", action="store_true", help="print every utterance whose intent is wrong")
    args = parser.parse_args()
    print(
        f"whisper base int8, {args.threads} threads; {platform.machine()} {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    rec = WhisperRecognizer(fetch("whisper-base-ct2", default_cache_dir() / "models"), "zh", args.threads)
    if args.tune:
        sweep = [(p, c) for c in (0.3, 0.4, 0.5) for p in (None, 0.7, 0.75, 0.8, 0.85)]
        for budget in (None, 80, DEFAULT_MAX_CHARS, 160):
            report(rec, tuning_set(DATA), budget, sweep, args.errors)
        return
    rules = [(None, 0.5), (PINYIN_MIN, 0.5), (None, MIN_CONFIDENCE), (PINYIN_MIN, MIN_CONFIDENCE)]
    for speakers in [tuning_set(DATA), *reporting_sets(DATA)]:
        for budget in (None, DEFAULT_MAX_CHARS):
            report(rec, speakers, budget, rules, args.errors)


if __name__ == "__main__":
    main()
