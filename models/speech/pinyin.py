"""Matching Mandarin transcripts to the store's phrases by sound (pinyin) instead of by character.

Whisper's errors on names are mostly homophones or near-homophones: 威灵 →
未灵 (wei ling → wei ling), 美芝 → 每只 (mei zhi → mei zhi), 美的 → 美帝 (mei de
→ mei di). Character edit distance calls those wrong; their pinyin is the
same or one sound off. So a phrase is compared with the transcript syllable
by syllable (tones dropped), with a partial cost where two syllables share
an initial or a final, or differ only by a pair that Mandarin speakers
commonly merge (z/zh, n/l, an/ang, ...: the fuzzy-pinyin table of Chinese
input methods). The slot values of the best-matching phrase fill the slots,
so a near-miss still names the right product.

Needs the optional ``pypinyin`` package (MIT, pure Python, in the ``speech``
extra); :func:`available` says whether it is installed.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

SLOT = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
MAX_EXPANSIONS = 400  # per phrase, as the intent matcher
_INITIALS: tuple[str, ...] = (
    "zh",
    "ch",
    "sh",
    "b",
    "p",
    "m",
    "f",
    "d",
    "t",
    "n",
    "l",
    "g",
    "k",
    "h",
    "j",
    "q",
    "x",
    "r",
    "z",
    "c",
    "s",
)
_INITIALS += ("y", "w")
# Pairs merged in many accents (fuzzy pinyin of Chinese input methods); each costs FUZZY instead of a full part.
_FUZZY_INITIALS = frozenset(
    frozenset(p) for p in [("z", "zh"), ("c", "ch"), ("s", "sh"), ("n", "l"), ("f", "h"), ("r", "l")]
)
_FUZZY_FINALS = frozenset(
    frozenset(p) for p in [("an", "ang"), ("en", "eng"), ("in", "ing"), ("ian", "iang"), ("uan", "uang")]
)
FUZZY = 0.25
PART = 0.5


def available() -> bool:
    """Whether pypinyin is installed (the matcher needs it; callers fall back to characters without it)."""
    try:
        import pypinyin  # noqa: F401
    except ImportError:
        return False
    return True


_DIGITS = "零一二三四五六七八九"
_NUMBER = re.compile(r"[0-9]+")
_WORD = re.compile(r"[a-z0-9]+")  # pinyin syllables and any Latin words, without spaces or punctuation


def read_number(digits: str) -> str:
    """A digit run as it is said: 29 → 二十九, 105 → 一百零五; long runs and leading zeros digit by digit (phone)."""
    if len(digits) > 4 or (len(digits) > 1 and digits[0] == "0"):
        return "".join(_DIGITS[int(d)] for d in digits)
    out = ""
    for i, d in enumerate(digits):
        place = len(digits) - i - 1
        if d == "0":
            out += "" if out.endswith("零") or place == 0 else "零"
            continue
        out += ("" if d == "1" and place == 1 and not out else _DIGITS[int(d)]) + ["", "十", "百", "千"][place]
    return out.rstrip("零") or "零"


def _spoken(text: str) -> str:
    return _NUMBER.sub(lambda m: read_number(m.group(0)), unicodedata.normalize("NFKC", text).lower())


def syllables(text: str) -> list[str]:
    """Toneless pinyin per Han character (Simplified or Traditional); Latin letters stay themselves, lower case.

    Digits are read out first (29 and 二十九 sound alike); whitespace and
    punctuation are dropped. Heteronyms take pypinyin's reading in context
    (美的 → mei de). Nothing is removed as a filler: 的 is part of 美的.
    """
    from pypinyin import lazy_pinyin

    out: list[str] = []
    for item in lazy_pinyin(_spoken(text)):
        out.extend(_WORD.findall(item))
    return out


def readings(text: str) -> list[tuple[str, ...]]:
    """Every reading of each character of a transcript (重 → zhong, chong): the recogniser chose the
    character, not the sound, so a phrase matches a heard character by whichever reading is closest."""
    from pypinyin import Style, pinyin

    out: list[tuple[str, ...]] = []
    for item in pinyin(_spoken(text), style=Style.NORMAL, heteronym=True):
        if len(item) > 1:  # a Han character with several readings
            out.append(tuple(dict.fromkeys(item)))
        else:  # one reading, or a run of other characters (Latin words, punctuation)
            out.extend((word,) for word in _WORD.findall(item[0]))
    return out


_APICAL = frozenset({"zh", "ch", "sh", "r", "z", "c", "s"})


@functools.lru_cache(maxsize=65536)
def _split(syllable: str) -> tuple[str, str]:
    """Initial and final; the "i" after zh/ch/sh/r/z/c/s is another vowel than in di/li/ji, so it is "-i"."""
    for initial in _INITIALS:
        if syllable.startswith(initial) and len(syllable) > len(initial):
            final = syllable[len(initial) :]
            return initial, "-i" if final == "i" and initial in _APICAL else final
    return "", syllable


def _part_cost(a: str, b: str, fuzzy: frozenset[frozenset[str]]) -> float:
    if a == b:
        return 0.0
    return FUZZY if frozenset((a, b)) in fuzzy else 1.0


@functools.lru_cache(maxsize=65536)
def syllable_cost(a: str, b: str) -> float:
    """0 for the same sound, 0.25-0.5 for a near miss (shared initial or final, merged pairs), 1 otherwise."""
    if a == b:
        return 0.0
    if not (a.isalpha() and b.isalpha()):
        return 1.0
    (ia, fa), (ib, fb) = _split(a), _split(b)
    initial = _part_cost(ia, ib, _FUZZY_INITIALS)
    final = _part_cost(fa, fb, _FUZZY_FINALS)
    if initial == 1.0 and final == 1.0:
        return 1.0
    return min(1.0, PART * (initial + final))


def _cost(x: str, ys: tuple[str, ...]) -> float:
    return min(syllable_cost(x, y) for y in ys)


def infix_cost(needle: Sequence[str], hay: Sequence[tuple[str, ...]]) -> float:
    """Cheapest weighted edit of ``needle`` into some contiguous part of ``hay`` (speech around it is free).

    ``hay`` holds the possible readings of each heard character (:func:`readings`).
    """
    previous = [0.0] * (len(hay) + 1)
    for i, x in enumerate(needle, 1):
        current = [float(i)]
        for j, ys in enumerate(hay, 1):
            current.append(min(previous[j] + 1.0, current[j - 1] + 1.0, previous[j - 1] + _cost(x, ys)))
        previous = current
    return min(previous)


def similarity(expected: str, heard: str) -> float:
    """1 - (pinyin edit cost of ``expected`` inside ``heard``) / its syllable count; 0 for empty text."""
    needle = syllables(expected)
    if not needle:
        return 0.0
    return max(0.0, 1.0 - infix_cost(needle, readings(heard)) / len(needle))


class IntentLike(Protocol):
    """What the index reads from an intent (agent.pipelines.speech.settings.IntentSpec has this shape)."""

    @property
    def name(self) -> str: ...

    @property
    def phrases(self) -> Mapping[str, Sequence[str]]: ...

    @property
    def slots(self) -> Mapping[str, Mapping[str, Sequence[str]]]: ...


@dataclass(frozen=True, slots=True)
class PinyinHit:
    """The closest phrase: its intent, the slot values it carries, and how close it sounded (0-1)."""

    intent: str
    slots: dict[str, str]
    similarity: float
    phrase: str


def expansions(intent: IntentLike, language: str = "zh") -> list[tuple[str, dict[str, str]]]:
    """Every phrase of ``intent`` in ``language`` with each slot filled by each way of saying each value."""
    out: list[tuple[str, dict[str, str]]] = []
    for phrase in intent.phrases.get(language, []):
        names = SLOT.findall(phrase)
        choices = [
            [(form, value) for value, spoken in intent.slots[n].items() for form in dict.fromkeys([value, *spoken])]
            for n in names
        ]
        for combo in itertools.islice(itertools.product(*choices), MAX_EXPANSIONS):
            text = phrase
            for name, (form, _) in zip(names, combo, strict=True):
                text = text.replace("{" + name + "}", form, 1)
            out.append((text, {n: v for n, (_, v) in zip(names, combo, strict=True)}))
    return out


class PinyinIndex:
    """The store's phrases as syllables, built once; :meth:`best` finds the closest one in a transcript.

    Phrases shorter than ``min_syllables`` are skipped: a single syllable
    matches by accident in any sentence.
    """

    def __init__(self, intents: Iterable[IntentLike], language: str = "zh", min_syllables: int = 2) -> None:
        self._entries: list[tuple[str, list[str], dict[str, str], str]] = []
        for intent in intents:
            for text, slots in expansions(intent, language):
                sounds = syllables(text)
                if len(sounds) >= min_syllables:
                    self._entries.append((intent.name, sounds, slots, text))
        logger.debug("pinyin index: %d phrase expansions", len(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def best(self, transcript: str, min_similarity: float = 0.0) -> PinyinHit | None:
        """The closest phrase (longer phrases win ties: they say more), or None below ``min_similarity``."""
        heard = readings(transcript)
        if not heard:
            return None
        best: tuple[float, int] | None = None
        hit: PinyinHit | None = None
        for intent, sounds, slots, text in self._entries:
            score = max(0.0, 1.0 - infix_cost(sounds, heard) / len(sounds))
            key = (score, len(sounds))
            if score >= min_similarity and (best is None or key > best):
                best, hit = key, PinyinHit(intent, dict(slots), score, text)
        return hit
