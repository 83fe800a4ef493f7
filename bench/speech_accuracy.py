"""Speech accuracy on the full reference sets: AISHELL-1 (112 utterances) and FireRedASR CER, LibriVox WER.

The tests use a fixed 30-utterance AISHELL subset to stay fast; this script runs everything and prints
error rates, intent accuracy on AISHELL and the median real-time factor per set.
Run: ``python bench/speech_accuracy.py [--engine whisper|whisper-30s|pocketsphinx]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.pipelines.speech.evaluation import aishell_refs, error_rate, fireredasr_refs, librivox_refs
from agent.pipelines.speech.intents import IntentMatcher
from agent.pipelines.speech.settings import IntentSpec
from models.speech.audio import read_wav
from models.speech.provision import default_cache_dir, fetch
from models.speech.recognizers import Recognizer, WhisperRecognizer

DATA = (
    Path(os.environ.get("STORE_AGENT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "media/speech"
)
AISHELL_INTENTS = [
    IntentSpec(
        name="set_temperature", phrases={"zh": ["设定{t}度", "设置{t}度"]}, slots={"t": [str(i) for i in range(16, 33)]}
    ),
    IntentSpec(name="raise_temperature", phrases={"zh": ["调高温度", "温度调高"]}),
    IntentSpec(name="play_song", phrases={"zh": ["想听歌曲", "来一首歌曲", "播放歌曲"]}),
]
AISHELL_EXPECTED = {"设定": "set_temperature", "调高温度": "raise_temperature", "想听歌曲": "play_song"}
AISHELL_EXPECTED["来一首歌曲"] = "play_song"


def recognizers(engine: str) -> dict[str, Recognizer]:
    """Recognisers per language for the named engine."""
    if engine == "pocketsphinx":
        from models.speech.sphinx import PocketSphinxRecognizer

        return {"en": PocketSphinxRecognizer(None)}
    path = fetch("whisper-base-ct2", default_cache_dir() / "models")
    fit = engine != "whisper-30s"
    return {"zh": WhisperRecognizer(path, "zh", fit_window=fit), "en": WhisperRecognizer(path, "en", fit_window=fit)}


def run_set(name: str, rec: Recognizer, folder: Path, refs: dict[str, str], language: str) -> list[tuple[str, str]]:
    pairs, rtfs = [], []
    matcher = IntentMatcher(AISHELL_INTENTS)
    correct = 0
    started = time.perf_counter()
    for ident, ref in refs.items():
        heard = rec.recognize(read_wav(folder / f"{ident}.wav"))
        pairs.append((ref, heard.text))
        rtfs.append(heard.rtf)
        if name == "aishell":
            expected = next((v for k, v in AISHELL_EXPECTED.items() if ref.startswith(k)), None)
            found = matcher.match(heard.text, language, heard.confidence)
            correct += (found.intent if found else None) == expected
    rate = error_rate(pairs, language)
    unit = "CER" if language == "zh" else "WER"
    extra = f", intent accuracy {correct / len(refs):.3f}" if name == "aishell" else ""
    print(
        f"{name:<11} {len(refs):>3} utterances  {unit} {rate:.3f}{extra}  median RTF {statistics.median(rtfs):.2f}  "
        f"({time.perf_counter() - started:.0f} s)"
    )
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=["whisper", "whisper-30s", "pocketsphinx"], default="whisper")
    args = parser.parse_args()
    print(f"engine {args.engine}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    recs = recognizers(args.engine)
    if "zh" in recs:
        run_set("aishell", recs["zh"], DATA / "zh/aishell", aishell_refs(DATA / "zh/aishell"), "zh")
        run_set("fireredasr", recs["zh"], DATA / "zh/fireredasr", fireredasr_refs(DATA / "zh/fireredasr"), "zh")
    run_set("librivox", recs["en"], DATA / "en", librivox_refs(DATA / "en"), "en")


if __name__ == "__main__":
    main()
