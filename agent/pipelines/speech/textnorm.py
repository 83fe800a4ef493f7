"""Text normalisation so intent phrases and recogniser output meet in one form.

Recognisers disagree on script (Whisper writes Traditional characters unless
prompted), numbers (十米 / 10米, "ten" / "10") and fillers (嗯, "um"). Both the
store's phrases and every transcript go through :func:`normalize`, so the
matcher compares like with like.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Callable

logger = logging.getLogger(__name__)

CHAR_LANGUAGES = frozenset({"zh", "ja", "ko", "yue"})

_ZH_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "幺": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_ZH_NUMBER = re.compile(f"[{''.join(_ZH_DIGITS)}{''.join(_ZH_UNITS)}]+")

_EN_UNITS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_EN_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}

FILLERS: dict[str, frozenset[str]] = {
    "en": frozenset({"um", "umm", "uh", "uhh", "er", "erm", "ah", "hmm", "mm", "please", "hey", "the"}),
    "zh": frozenset({"嗯", "啊", "呃", "哦", "噢", "呀", "吧", "呢", "嘛", "哎", "诶", "那个", "请问", "一下"}),
}
_PUNCT = re.compile(r"[^\w\s{}]", re.UNICODE)


@functools.cache
def _t2s() -> Callable[[str], str]:
    try:
        import opencc
    except ImportError:
        logger.warning("opencc is not installed: Traditional characters will not match Simplified phrases")
        return lambda text: text
    converter = opencc.OpenCC("t2s")
    return converter.convert


def zh_number(word: str) -> str:
    """Chinese numerals to digits: 二十九 → 29, 一百零五 → 105; a run of bare digits (一三八) → 138."""
    if not any(ch in _ZH_UNITS for ch in word):
        return "".join(str(_ZH_DIGITS[ch]) for ch in word)
    total = section = digit = 0
    for ch in word:
        if ch in _ZH_DIGITS:
            digit = _ZH_DIGITS[ch]
        elif ch == "万":
            total += (section + digit) * 10000
            section = digit = 0
        else:
            section += (digit or 1) * _ZH_UNITS[ch]
            digit = 0
    return str(total + section + digit)


def en_numbers(words: list[str]) -> list[str]:
    """English number words to digits: "ten" → 10, "twenty one" → 21, "two hundred five" → 205."""
    out: list[str] = []
    value: int | None = None
    for word in words:
        round_hundreds = value is not None and value >= 100 and value % 100 == 0
        if word in _EN_TENS:
            if value is not None and not round_hundreds:
                out.append(str(value))
                value = None
            value = (value or 0) + _EN_TENS[word]
        elif word in _EN_UNITS:
            unit = _EN_UNITS[word]
            round_tens = value is not None and value >= 20 and value % 10 == 0 and value % 100 != 0 and unit < 10
            if value is not None and (round_tens or round_hundreds):
                value += unit
            else:
                if value is not None:
                    out.append(str(value))
                value = unit
        elif word == "hundred" and value is not None and 0 < value < 10:
            value *= 100
        else:
            if value is not None:
                out.append(str(value))
                value = None
            out.append(word)
    if value is not None:
        out.append(str(value))
    return out


def normalize(text: str, language: str) -> str:
    """One comparable form: NFKC, lower case, Simplified, digits, no punctuation or fillers.

    Character languages lose their spaces (tokens are characters); others keep
    single spaces between words. ``{slot}`` placeholders survive unchanged.
    """
    text = unicodedata.normalize("NFKC", text).replace("\ufeff", "").lower()
    text = _PUNCT.sub(" ", text)
    if language in CHAR_LANGUAGES or re.search(r"[\u4e00-\u9fff]", text):
        text = _t2s()(text)
        text = _ZH_NUMBER.sub(lambda m: zh_number(m.group(0)), text)
        for filler in sorted(FILLERS["zh"], key=len, reverse=True):
            text = text.replace(filler, "")
    words = [w for w in text.split() if w not in FILLERS["en"]]
    words = en_numbers(words)
    if language in CHAR_LANGUAGES:
        return "".join(words)
    return " ".join(words)


def tokens(text: str, language: str) -> list[str]:
    """Units the matcher and error rates count: characters for Chinese-like languages, else words."""
    if language in CHAR_LANGUAGES:
        return [ch for ch in text if not ch.isspace()]
    return text.split()


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between token lists (for WER/CER and fuzzy matching)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def infix_distance(needle: list[str], hay: list[str]) -> int:
    """Fewest edits turning ``needle`` into some contiguous part of ``hay`` (extra speech around is free)."""
    previous = [0] * (len(hay) + 1)
    for i, x in enumerate(needle, 1):
        current = [i]
        for j, y in enumerate(hay, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return min(previous)
