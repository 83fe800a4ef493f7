"""``pipelines.speech``: recognisers, voice activity detection and the store's intents.

Pure pydantic so the config validates on any machine without speech libraries.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.pipelines.base import ConfiguredDevices, PipelineSettings
from drivers.registry import DeviceKind

#: The rate the speech pipeline listens at; microphone drivers resample whatever the device captures.
SPEECH_RATE = 16000

SLOT = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class IntentSpec(BaseModel):
    """One intent: phrases per language with ``{slot}`` placeholders, the slots' values, a threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Intent name in events, e.g. 'ask_location'.")
    phrases: dict[str, list[str]] = Field(
        min_length=1,
        description="Phrases per language code ('zh', 'en', 'ko'), e.g. "
        "{en: ['where are the {item}'], zh: ['{item}在哪里']}.",
    )
    slots: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description="Per slot: canonical value -> the ways it is said in any language, "
        "e.g. {item: {shoes: [shoes, 鞋子]}}.",
    )
    min_confidence: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Recogniser confidence × phrase similarity needed to emit (0 would accept anything).",
    )
    cooldown_s: float = Field(3.0, ge=0, description="The same intent is not emitted again within this many seconds.")

    @field_validator("slots", mode="before")
    @classmethod
    def _lists_are_values(cls, value: object) -> object:
        """A plain list of values means each value is said as written."""
        if isinstance(value, dict):
            return {k: ({v: [v] for v in vs} if isinstance(vs, list) else vs) for k, vs in value.items()}
        return value

    @model_validator(mode="after")
    def _slots_declared(self) -> IntentSpec:
        for language, phrases in self.phrases.items():
            if not phrases:
                raise ValueError(f"phrases.{language}: give at least one phrase")
            for i, phrase in enumerate(phrases):
                for slot in SLOT.findall(phrase):
                    if slot not in self.slots or not self.slots[slot]:
                        raise ValueError(
                            f"phrases.{language}[{i}] {phrase!r}: slot {{{slot}}} has no values under slots"
                        )
        return self


class RecognizerSettings(BaseModel):
    """One recogniser for a microphone."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    engine: Literal["vosk", "whisper", "pocketsphinx"] = Field(
        "vosk",
        description="vosk (streaming Kaldi, for a Pi), whisper (faster-whisper, int8) or pocketsphinx "
        "(CMU Sphinx, English, model inside its wheel).",
    )
    model: str = Field(
        "vosk-model-small-cn", description="Model name in the model manifest (models/manifests/speech.yaml)."
    )
    language: str = Field(
        "zh", pattern=r"^([a-z]{2,3}|auto)$", description="Language code; 'auto' lets whisper detect it."
    )
    mode: Literal["grammar", "free"] = Field(
        "grammar",
        description="vosk and pocketsphinx: 'grammar' recognises only the intent phrases (fast, spotting); "
        "'free' anything.",
    )
    kws_threshold: float = Field(
        1e-20, gt=0, lt=1, description="pocketsphinx grammar mode: keyphrase detection threshold (lower spots more)."
    )
    threads: int = Field(2, ge=1, le=16, description="whisper only: CPU threads.")
    fit_window: bool = Field(True, description="whisper only: size the window to the utterance instead of 30 s.")
    store_prompt: bool = Field(
        True,
        description="whisper only: give Whisper the store's slot values and catalogue product names as its prompt, "
        "so names are heard as written in the config (Mandarin names: CER 0.28 -> 0.19 on an unseen speaker).",
    )
    prompt_chars: int = Field(
        120, ge=0, le=200, description="whisper only: prompt length; past ~160 Whisper copies prompt names into text."
    )

    @model_validator(mode="before")
    @classmethod
    def _engine_default_model(cls, data: object) -> object:
        """pocketsphinx without a model uses the one in its wheel."""
        if isinstance(data, dict) and data.get("engine") == "pocketsphinx" and "model" not in data:
            return {**data, "model": "pocketsphinx-en-us", "language": data.get("language", "en")}
        return data


class VadSettings(BaseModel):
    """Voice activity detection that cuts the microphone stream into utterances."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["webrtc", "energy"] = Field(
        "webrtc", description="webrtc (webrtcvad) or a noise-floor energy detector."
    )
    aggressiveness: int = Field(2, ge=0, le=3, description="webrtc only: 0 keeps most audio, 3 is strictest.")
    frame_ms: Literal[10, 20, 30] = Field(30, description="VAD frame length.")
    pre_roll_ms: int = Field(300, ge=0, le=2000, description="Audio kept from before speech starts.")
    hangover_ms: int = Field(400, ge=60, le=3000, description="Silence that ends an utterance.")
    min_speech_ms: int = Field(200, ge=30, description="Shorter bursts are clicks, not speech.")
    max_utterance_s: float = Field(12.0, gt=1, le=60, description="Longer speech is cut here.")


class SpeechSettings(PipelineSettings):
    """Offline speech intents from microphones (docs/speech.md)."""

    SOURCE_FIELDS: ClassVar[dict[str, DeviceKind]] = {"microphones": "microphone"}
    microphones: list[str] = Field(default_factory=list, description="Microphones to listen on; empty means every one.")
    recognizers: list[RecognizerSettings] = Field(
        default_factory=lambda: [RecognizerSettings()],
        min_length=1,
        description="Recognisers every utterance goes through (e.g. vosk zh + vosk en); the best intent wins.",
    )
    microphone_recognizers: dict[str, list[RecognizerSettings]] = Field(
        default_factory=dict, description="Per-microphone recognisers, replacing `recognizers` for that microphone."
    )
    vad: VadSettings = Field(default_factory=VadSettings, description="Voice activity detection.")
    intents: list[IntentSpec] = Field(default_factory=list, description="The store's intents.")
    max_pending_utterances: int = Field(
        2, ge=1, le=32, description="Utterances waiting for the recogniser; beyond this new ones are dropped whole."
    )
    when_busy: Literal["drop", "wait"] = Field(
        "drop", description="'drop' whole utterances when the recogniser lags (live); 'wait' blocks (replay)."
    )
    pinyin_min_similarity: float | None = Field(
        0.8,
        ge=0,
        le=1,
        description="Mandarin: when no phrase is heard exactly, the closest by sound (pinyin, needs pypinyin) "
        "counts if at least this similar; null turns it off (docs/speech.md).",
    )

    def model_names(self) -> list[str]:
        """Each recogniser's manifest model; pocketsphinx's en-us model lives inside its wheel."""
        from models.speech.sphinx import WHEEL_MODEL

        every = [*self.recognizers, *(r for rs in self.microphone_recognizers.values() for r in rs)]
        return list(
            dict.fromkeys(r.model for r in every if not (r.engine == "pocketsphinx" and r.model == WHEEL_MODEL))
        )

    @model_validator(mode="after")
    def _unique_intents(self) -> SpeechSettings:
        names = [i.name for i in self.intents]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"intents: {name!r} is declared twice")
        return self

    def check_sources(self, name: str, devices: ConfiguredDevices) -> None:
        super().check_sources(name, devices)
        if not self.enabled:
            return
        for where, mic in devices.device_entries("microphone"):
            rate = getattr(mic, "sample_rate", SPEECH_RATE)
            if mic.enabled and (not self.microphones or mic.name in self.microphones) and rate != SPEECH_RATE:
                raise ValueError(
                    f"{where}.sample_rate: the speech pipeline listens at {SPEECH_RATE} Hz (got {rate}); the "
                    "driver resamples whatever the device captures (device_rate), so keep sample_rate at "
                    f"{SPEECH_RATE}"
                )
