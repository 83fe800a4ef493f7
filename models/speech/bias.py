"""The store's own words as recogniser context: Whisper's prompt and a Vosk grammar's word list.

Whisper base gets common Mandarin right and the words a shop depends on
wrong: brand and place names come out as homophones (威灵 → 未灵, 美芝 →
每只). Whisper reads a prompt as text said just before the utterance, so
listing the names a store expects raises their probability without
constraining anything else. The terms come from the config alone: the
intents' slot values and the words around their slots, and the catalogue's
product names, so the prompt follows the store and is built once at start.

Terms are ordered by how much they help (slot values and catalogue names
before phrase words) and cut to a character budget: a long prompt costs
decoder time on every utterance and, past a point, makes Whisper copy prompt
words into unrelated speech. Budget and style were chosen on the tuning
speaker (AISHELL-1 S0150, ``bench/speech_names.py``), never on the reporting
speakers.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

logger = logging.getLogger(__name__)

SLOT = re.compile(r"\{[a-z_][a-z0-9_]*\}")
_HAN = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
CHAR_LANGUAGES = frozenset({"zh", "ja", "ko", "yue"})
LEADS = {"zh": "以下是普通话的句子。"}  # keeps Whisper in Simplified characters
SEPARATORS = {"zh": "、", "ja": "、"}
DEFAULT_MAX_CHARS = 120


class IntentLike(Protocol):
    """What the builder reads from an intent (agent.pipelines.speech.settings.IntentSpec has this shape)."""

    @property
    def phrases(self) -> Mapping[str, Sequence[str]]: ...

    @property
    def slots(self) -> Mapping[str, Mapping[str, Sequence[str]]]: ...


def in_language(text: str, language: str) -> bool:
    """Whether ``text`` is written in ``language``'s script (Han for zh; Latin for en and the like)."""
    if language in ("zh", "yue"):
        return bool(_HAN.search(text))
    if language in CHAR_LANGUAGES:
        return not _LATIN.search(text)
    return bool(_LATIN.search(text)) and not _HAN.search(text)


def _clean(term: str) -> str:
    return " ".join(term.replace("(", " ").replace(")", " ").replace("（", " ").replace("）", " ").split())


def store_terms(intents: Iterable[IntentLike], language: str, catalog_names: Iterable[str] = ()) -> list[str]:
    """The store's words in ``language``, most useful first, without repeats.

    Slot values (every spoken form written in the language's script) and
    catalogue names come first, taken in turn from each slot and from the
    catalogue: they are the names. Then the fixed words of the intent phrases
    with their slots removed (有没有, 在哪里), which Whisper usually gets
    right anyway.
    """
    per_slot: list[list[str]] = []
    fixed: list[str] = []
    for intent in intents:
        used = {s.strip("{}") for p in intent.phrases.get(language, []) for s in SLOT.findall(p)}
        for slot in sorted(used):
            forms = [f for v, spoken in intent.slots.get(slot, {}).items() for f in [v, *spoken]]
            per_slot.append([f for f in forms if in_language(f, language)])
        for phrase in intent.phrases.get(language, []):
            fixed.extend(part for part in SLOT.split(phrase) if in_language(part, language))
    per_slot.append([n for n in catalog_names if in_language(n, language)])
    # Round robin over slots and the catalogue, so a budget cut leaves every slot some of its names.
    values = [t for group in itertools.zip_longest(*per_slot) for t in group if t is not None]
    terms = [_clean(t) for t in [*values, *fixed]]
    return list(dict.fromkeys(t for t in terms if t))


def build_prompt(
    terms: Sequence[str], language: str, max_chars: int = DEFAULT_MAX_CHARS, lead: str | None = None
) -> str | None:
    """Whisper's previous-text prompt: a short lead sentence, then terms in order until ``max_chars``.

    Returns None when there is nothing to say (Whisper then decodes with its
    own default context). Terms that do not fit are left out whole, never cut.
    """
    lead = LEADS.get(language, "") if lead is None else lead
    sep = SEPARATORS.get(language, ", ")
    end = "。" if language in CHAR_LANGUAGES else "."
    chosen: list[str] = []
    size = len(lead) + len(end)
    for term in terms:
        extra = len(term) + (len(sep) if chosen else 0)
        if size + extra > max_chars:
            continue
        chosen.append(term)
        size += extra
    if len(chosen) < len(terms):
        logger.info("whisper prompt: %d of %d store terms fit in %d characters", len(chosen), len(terms), max_chars)
    if not chosen:
        return lead or None
    return f"{lead}{sep.join(chosen)}{end}"
