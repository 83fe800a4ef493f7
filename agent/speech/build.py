"""Builds one :class:`SpeechPipeline` per microphone from ``pipelines.speech`` in the store config."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import agent.speech.events  # noqa: F401  (registers speech.intent)
from agent.identity import MEMBER_AT_TERMINAL_SERVICE
from agent.speech.intents import IntentMatcher
from agent.speech.pipeline import SpeechPipeline, UtteranceResult
from agent.speech.spec import RecognizerSettings, VadSettings
from models.manifest import entry, resolve
from models.speech.provision import unpacked_archive
from models.speech.recognizers import Recognizer, VoskRecognizer, WhisperRecognizer
from models.speech.vad import Segmenter, make_vad

if TYPE_CHECKING:
    from agent.config.pipelines import SpeechPipeline as SpeechSettings
    from agent.config.schema import StoreConfig
    from agent.runtime.pipeline import Pipeline, RuntimeContext

logger = logging.getLogger(__name__)


def model_path(name: str, models_dir: Path) -> Path:
    """The verified model directory for a manifest entry (zip entries are unpacked once beside the zip)."""
    if entry(name).file.endswith(".zip"):
        return unpacked_archive(name, models_dir)
    return resolve(name, models_dir)


def make_recognizer(settings: RecognizerSettings, matcher: IntentMatcher, models_dir: Path) -> Recognizer:
    """One recogniser; vosk and pocketsphinx in grammar mode only hear the intents' phrases of its language."""
    if settings.engine == "pocketsphinx":
        from models.speech.sphinx import WHEEL_MODEL, PocketSphinxRecognizer

        folder = None if settings.model == WHEEL_MODEL else model_path(settings.model, models_dir)
        phrases = matcher.phrases(settings.language) if settings.mode == "grammar" else None
        if phrases is not None and not phrases:
            raise ValueError(f"pocketsphinx grammar mode for {settings.language!r}: no intent has phrases in it")
        return PocketSphinxRecognizer(folder, settings.language, phrases, settings.kws_threshold)
    path = model_path(settings.model, models_dir)
    if settings.engine == "vosk":
        grammar = matcher.phrases(settings.language) if settings.mode == "grammar" else None
        if grammar is not None and not grammar:
            raise ValueError(f"vosk grammar mode for {settings.language!r}: no intent has phrases in that language")
        return VoskRecognizer(path, settings.language, grammar)
    language = None if settings.language == "auto" else settings.language
    return WhisperRecognizer(path, language, settings.threads, fit_window=settings.fit_window)


def make_segmenter(source: str, vad: VadSettings) -> Segmenter:
    return Segmenter(
        source,
        make_vad(vad.kind, vad.frame_ms, vad.aggressiveness),
        pre_roll_ms=vad.pre_roll_ms,
        hangover_ms=vad.hangover_ms,
        min_speech_ms=vad.min_speech_ms,
        max_utterance_s=vad.max_utterance_s,
    )


def make_pipeline(
    source: str,
    settings: SpeechSettings,
    models_dir: Path,
    *,
    include_transcript: bool = False,
    member_at_terminal: Callable[[], str | None] | None = None,
    on_result: Callable[[UtteranceResult], None] | None = None,
    when_busy: str | None = None,
) -> SpeechPipeline:
    """A pipeline for one microphone; models load in ``warm_up``."""
    matcher = IntentMatcher(settings.intents)
    chosen = settings.microphone_recognizers.get(source, settings.recognizers)

    def recognizers() -> list[Recognizer]:
        return [make_recognizer(r, matcher, models_dir) for r in chosen]

    return SpeechPipeline(
        source,
        make_segmenter(source, settings.vad),
        recognizers,
        matcher,
        max_pending=settings.max_pending_utterances,
        when_busy=when_busy or settings.when_busy,
        include_transcript=include_transcript,
        member_at_terminal=member_at_terminal,
        on_result=on_result,
    )


def build(config: StoreConfig, ctx: RuntimeContext) -> list[Pipeline[Any]]:
    settings = config.pipelines.speech
    sources = settings.microphones or sorted(config.device_names("microphone"))
    member = ctx.services.get(MEMBER_AT_TERMINAL_SERVICE)
    return [
        make_pipeline(
            source,
            settings,
            ctx.models_dir,
            include_transcript=config.privacy.egress.transcripts,
            member_at_terminal=member,
        )
        for source in sources
    ]
