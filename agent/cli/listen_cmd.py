"""``store-agent listen --config C WAV...``: run the speech pipeline on WAV files, one JSON line per utterance.

The tool for tuning phrases: it prints what was heard (language, transcript,
intent, confidence, real-time factor), which events never carry. Nothing is
published. Utterances are never dropped here: the recogniser is waited for.

Exit codes: 0 all files heard; 65 (EX_DATAERR) a file was not usable audio
(named on stderr; the other files are still processed); 69 a model is not
provisioned; 78 the config is invalid.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from agent.cli import EXIT_DATA, add_config_option
from agent.config.loader import load_config
from agent.pipelines.speech.build import make_stage
from agent.pipelines.speech.settings import SpeechSettings
from agent.pipelines.speech.stage import UtteranceResult
from drivers.base import AudioChunk, Capture
from models.speech.audio import SAMPLE_RATE, AudioFormatError, chunks, read_wav

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "listen",
        help="recognise speech intents in WAV files and print one JSON line per utterance",
        epilog="exit codes: 0 every file heard; 65 a file was not usable audio (named on stderr, the others are "
        "still heard); 69 a model is not provisioned; 78 invalid config",
    )
    add_config_option(parser, help="store YAML with pipelines.speech")
    parser.add_argument("--models-dir", type=Path, help="override models.directory from the config")
    parser.add_argument("--microphone", help="use this microphone's recognisers (default: the pipeline's)")
    parser.add_argument(
        "wavs", nargs="+", type=Path, metavar="WAV", help="16-bit PCM WAV files (converted to 16 kHz mono)"
    )
    parser.set_defaults(func=listen)


def result_line(wav: Path, result: UtteranceResult) -> dict[str, Any]:
    best = result.best
    match = result.match
    return {
        "file": str(wav),
        "start_s": None,
        "duration_s": round(result.utterance.duration_s, 2),
        "language": match.language if match else (best.language if best else None),
        "engine": best.engine if best else None,
        "transcript": best.text if best else "",
        "asr_confidence": round(best.confidence, 3) if best else 0.0,
        "intent": match.intent if match else None,
        "slots": match.slots if match else {},
        "confidence": round(match.confidence, 3) if match else 0.0,
        "rtf": round(sum(t.decode_s for t in result.transcripts) / max(result.utterance.duration_s, 1e-6), 3),
        "latency_ms": round(result.latency_s * 1000),
        "transcripts": [{"engine": t.engine, "language": t.language, "text": t.text} for t in result.transcripts],
    }


def listen(args: argparse.Namespace) -> int:
    config = load_config(args.config).config
    settings = config.pipelines.settings(SpeechSettings)
    models_dir = args.models_dir or Path(config.models.directory)
    source = args.microphone or (settings.microphones[0] if settings.microphones else "listen")
    results: list[UtteranceResult] = []
    pipeline = make_stage(source, settings, models_dir, on_result=results.append, when_busy="wait")
    pipeline.warm_up()
    code = 0
    try:
        for wav in args.wavs:
            try:
                samples = read_wav(wav)
            except AudioFormatError as exc:
                print(f"error: {exc}", file=sys.stderr)
                code = EXIT_DATA
                continue
            for seq, block in enumerate(chunks(samples), 1):
                pipeline.process(AudioChunk(source, Capture.now(seq), block, SAMPLE_RATE))
            pipeline.finish()
            for result in results:
                print(json.dumps(result_line(wav, result), ensure_ascii=False), flush=True)
            results.clear()
    finally:
        pipeline.close()
    return code
