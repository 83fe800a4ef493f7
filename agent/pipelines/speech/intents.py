"""Matching transcripts to the store's intents: exact phrase patterns first, then tolerant similarity.

Phrases and transcripts are normalised alike (script, numbers, fillers). A
phrase matches where it occurs inside the transcript (speech around it is
allowed); otherwise the closest slot-filled phrase is scored by edit distance
against the best-matching stretch of the transcript, and, for Mandarin, by
sound (pinyin, ``models.speech.pinyin``): a recogniser that writes a brand as
a homophone (威灵 → 未灵) still fills the right slot. Confidence is the
recogniser's confidence times that similarity.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.pipelines.speech.settings import SLOT, IntentSpec
from agent.pipelines.speech.textnorm import CHAR_LANGUAGES, infix_distance, normalize, tokens
from models.speech import pinyin
from models.speech.pinyin import PinyinIndex

logger = logging.getLogger(__name__)

MAX_EXPANSIONS = 400


@dataclass(frozen=True, slots=True)
class IntentMatch:
    intent: str
    slots: dict[str, str]
    language: str
    confidence: float
    similarity: float


@dataclass
class _Template:
    intent: IntentSpec
    language: str
    pattern: re.Pattern[str]
    slot_names: list[str]
    expansions: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)


class IntentMatcher:
    """Compiled intents of one store; ``match`` is pure and cheap (well under a millisecond per intent)."""

    def __init__(self, intents: Sequence[IntentSpec], fuzzy_min: float = 0.75, pinyin_min: float | None = None) -> None:
        self.intents = {i.name: i for i in intents}
        self.fuzzy_min = fuzzy_min
        self.pinyin_min = pinyin_min
        self._pinyin: PinyinIndex | None = None
        if pinyin_min is not None and any("zh" in i.phrases for i in intents):
            if pinyin.available():
                self._pinyin = PinyinIndex(intents, "zh")
            else:
                logger.warning("pinyin matching is configured but pypinyin is not installed (the speech extra)")
        self._templates: list[_Template] = []
        self._spoken: dict[tuple[str, str, str], str] = {}
        for intent in intents:
            for language, phrases in intent.phrases.items():
                for phrase in phrases:
                    self._templates.append(self._compile(intent, language, phrase))

    def _slot_forms(self, intent: IntentSpec, slot: str, language: str) -> dict[str, str]:
        """Normalised spoken form -> canonical value."""
        forms: dict[str, str] = {}
        for value, spoken in intent.slots[slot].items():
            for form in [value, *spoken]:
                norm = normalize(form, language)
                if norm:
                    forms.setdefault(norm, value)
        return forms

    def _compile(self, intent: IntentSpec, language: str, phrase: str) -> _Template:
        sep = "" if language in CHAR_LANGUAGES else " "
        parts = SLOT.split(normalize(phrase, language))
        regex = ""
        slot_names: list[str] = []
        choices: list[list[tuple[str, dict[str, str]]]] = []
        for i, part in enumerate(parts):
            if i % 2 == 0:
                regex += re.escape(part)
                if part:
                    choices.append([(part, {})])
                continue
            forms = self._slot_forms(intent, part, language)
            group = f"s{len(slot_names)}"
            slot_names.append(part)
            alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
            regex += f"(?P<{group}>{alternatives})"
            choices.append([(form, {part: value}) for form, value in forms.items()])
            for form, value in forms.items():
                self._spoken[(intent.name, part, form)] = value
        bounded = regex if sep == "" else rf"(?:^|\s){regex}(?:\s|$)"
        template = _Template(intent, language, re.compile(bounded.replace(r"\ ", r"\s+")), slot_names)
        for combo in itertools.islice(itertools.product(*choices), MAX_EXPANSIONS):
            text = sep.join(t.strip() for t, _ in combo) if sep else "".join(t for t, _ in combo)
            slots: dict[str, str] = {}
            for _, s in combo:
                slots.update(s)
            template.expansions.append((tokens(text, language), slots))
        return template

    def phrases(self, language: str) -> list[str]:
        """Every phrase of ``language`` with slots filled by each spoken form (the Vosk grammar)."""
        out: list[str] = []
        for intent in self.intents.values():
            for phrase in intent.phrases.get(language, []):
                names = SLOT.findall(phrase)
                value_lists = [
                    [f for fs in intent.slots[n].values() for f in fs] or list(intent.slots[n]) for n in names
                ]
                for combo in itertools.islice(itertools.product(*value_lists), MAX_EXPANSIONS):
                    filled = phrase
                    for n, v in zip(names, combo, strict=True):
                        filled = filled.replace("{" + n + "}", v, 1)
                    out.append(filled)
        return list(dict.fromkeys(out))

    def match(self, transcript: str, language: str, asr_confidence: float) -> IntentMatch | None:
        """The best intent for a transcript, or None when nothing reaches its intent's ``min_confidence``."""
        templates = [t for t in self._templates if t.language == language] or (
            self._templates if language == "auto" else []
        )
        best: IntentMatch | None = None
        for template in templates:
            candidate = self._match_one(template, transcript, asr_confidence)
            good = candidate is not None and candidate.confidence >= template.intent.min_confidence
            if good and candidate is not None and (best is None or candidate.confidence > best.confidence):
                best = candidate
        if language == "zh" and self._pinyin is not None and (best is None or best.similarity < 1.0):
            by_sound = self._by_sound(transcript, asr_confidence)
            if by_sound is not None and (best is None or by_sound.similarity > best.similarity):
                best = by_sound
        return best

    def _by_sound(self, transcript: str, asr_confidence: float) -> IntentMatch | None:
        """The closest phrase by pinyin, when it reaches ``pinyin_min`` and its intent's ``min_confidence``."""
        assert self._pinyin is not None and self.pinyin_min is not None
        hit = self._pinyin.best(transcript, self.pinyin_min)
        if hit is None or asr_confidence * hit.similarity < self.intents[hit.intent].min_confidence:
            return None
        return IntentMatch(hit.intent, hit.slots, "zh", asr_confidence * hit.similarity, hit.similarity)

    def _match_one(self, template: _Template, transcript: str, asr_confidence: float) -> IntentMatch | None:
        text = normalize(transcript, template.language)
        if not text:
            return None
        found = template.pattern.search(text)
        if found:
            slots = {
                name: self._spoken[(template.intent.name, name, found.group(f"s{i}"))]
                for i, name in enumerate(template.slot_names)
            }
            return IntentMatch(template.intent.name, slots, template.language, asr_confidence, 1.0)
        heard = tokens(text, template.language)
        best_sim, best_slots = 0.0, {}
        for expected, slots in template.expansions:
            if not expected:
                continue
            similarity = 1.0 - infix_distance(expected, heard) / len(expected)
            if similarity > best_sim:
                best_sim, best_slots = similarity, slots
        if best_sim < self.fuzzy_min:
            return None
        return IntentMatch(
            template.intent.name, dict(best_slots), template.language, asr_confidence * best_sim, best_sim
        )
