"""Builds one :class:`SpeechStage` per microphone from ``pipelines.speech`` in the store config."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.pipelines.speech.intents import IntentMatcher
from agent.pipelines.speech.settings import RecognizerSettings, SpeechSettings, VadSettings
from agent.pipelines.speech.stage import SpeechStage, UtteranceResult
from models.manifest import entry, resolve
from models.speech.bias import build_prompt, store_terms
from models.speech.provision import unpacked_archive
from models.speech.recognizers import Recognizer, VoskRecognizer, WhisperRecognizer
from models.speech.vad import Segmenter, make_vad

if TYPE_CHECKING:
    from agent.pipelines.shared import Shared
    from agent.pipelines.stage import Stage

logger = logging.getLogger(__name__)


def model_path(name: str, models_dir: Path) -> Path:
    """The verified model directory for a manifest entry (zip entries are unpacked once beside the zip)."""
    if entry(name).file.endswith(".zip"):
        return unpacked_archive(name, models_dir)
    return resolve(name, models_dir)


def make_recognizer(
    settings: RecognizerSettings, matcher: IntentMatcher, models_dir: Path, vocabulary: Sequence[str] = ()
) -> Recognizer:
    """One recogniser; vosk and pocketsphinx in grammar mode only hear the intents' phrases of its language;
    whisper is prompted with the store's words (slot values and the catalogue's ``vocabulary``)."""
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
    prompt = None
    if settings.store_prompt and language is not None:
        terms = store_terms(matcher.intents.values(), language, vocabulary)
        prompt = build_prompt(terms, language, settings.prompt_chars)
    return WhisperRecognizer(path, language, settings.threads, fit_window=settings.fit_window, prompt=prompt)


def make_segmenter(source: str, vad: VadSettings) -> Segmenter:
    return Segmenter(
        source,
        make_vad(vad.kind, vad.frame_ms, vad.aggressiveness),
        pre_roll_ms=vad.pre_roll_ms,
        hangover_ms=vad.hangover_ms,
        min_speech_ms=vad.min_speech_ms,
        max_utterance_s=vad.max_utterance_s,
    )


def make_stage(
    source: str,
    settings: SpeechSettings,
    models_dir: Path,
    *,
    include_transcript: bool = False,
    member_at_terminal: Callable[[], str | None] | None = None,
    on_result: Callable[[UtteranceResult], None] | None = None,
    when_busy: str | None = None,
    vocabulary: Sequence[str] = (),
) -> SpeechStage:
    """The stage of one microphone; models load in ``warm_up``. ``vocabulary``: the store's product names."""
    matcher = IntentMatcher(settings.intents, pinyin_min=settings.pinyin_min_similarity)
    chosen = settings.microphone_recognizers.get(source, settings.recognizers)

    def recognizers() -> list[Recognizer]:
        return [make_recognizer(r, matcher, models_dir, vocabulary) for r in chosen]

    return SpeechStage(
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


def build(settings: SpeechSettings, shared: Shared) -> list[Stage[Any]]:
    return [
        make_stage(
            source,
            settings,
            shared.models.directory,
            include_transcript=shared.privacy.transcripts,
            member_at_terminal=shared.presence.current,
            vocabulary=shared.product_names,
        )
        for source in shared.devices.sources(settings.microphones, "microphone")
    ]
