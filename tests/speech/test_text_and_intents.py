"""Normalisation and intent matching: pure functions, no models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.pipelines.speech.intents import IntentMatcher
from agent.pipelines.speech.settings import IntentSpec
from agent.pipelines.speech.textnorm import edit_distance, infix_distance, normalize, zh_number

INTENTS = [
    IntentSpec(
        name="ask_location",
        phrases={"en": ["where are the {item}", "where is the {item}"], "zh": ["{item}在哪里", "{item}在哪儿"]},
        slots={"item": {"shoes": ["shoes", "鞋子", "鞋"], "water": ["water", "水"]}},
    ),
    IntentSpec(name="compliment_smell", phrases={"zh": ["好香", "真香"]}, cooldown_s=10),
    IntentSpec(name="set_temperature", phrases={"zh": ["设定{t}度"]}, slots={"t": [str(i) for i in range(16, 33)]}),
    IntentSpec(name="go_forward", phrases={"en": ["go forward {n} meters"]}, slots={"n": ["one", "five", "ten"]}),
]


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("開放時間早上九點", "zh", "开放时间早上9点"),
        ("设定二十九度", "zh", "设定29度"),
        ("一百零五", "zh", "105"),
        ("一三八幺", "zh", "1381"),
        ("嗯，鞋子在哪裡呢？", "zh", "鞋子在哪里"),
        ("Um, go forward TEN meters.", "en", "go forward 10 meters"),
        ("twenty one", "en", "21"),
        ("one zero zero", "en", "1 0 0"),
    ],
)
def test_normalize(text: str, language: str, expected: str) -> None:
    assert normalize(text, language) == expected


def test_zh_number_and_distances() -> None:
    assert zh_number("三十") == "30"
    assert zh_number("两万零一") == "20001"
    assert edit_distance(list("abc"), list("abd")) == 1
    assert infix_distance(list("好香"), list("哇好香啊")) == 0


@pytest.mark.parametrize(
    ("transcript", "language", "intent", "slots"),
    [
        ("Where are the shoes?", "en", "ask_location", {"item": "shoes"}),
        ("uh where is the water please", "en", "ask_location", {"item": "water"}),
        ("鞋子在哪裡", "zh", "ask_location", {"item": "shoes"}),
        ("请问水在哪儿啊", "zh", "ask_location", {"item": "water"}),
        ("哇，好香啊", "zh", "compliment_smell", {}),
        ("設定二十九度", "zh", "set_temperature", {"t": "29"}),
        ("Go forward ten meters.", "en", "go_forward", {"n": "ten"}),
        ("go forward 10 meters", "en", "go_forward", {"n": "ten"}),
    ],
)
def test_exact_matches(transcript: str, language: str, intent: str, slots: dict[str, str]) -> None:
    match = IntentMatcher(INTENTS).match(transcript, language, 0.9)
    assert match is not None
    assert (match.intent, match.slots, match.similarity) == (intent, slots, 1.0)


def test_fuzzy_match_scales_confidence_and_threshold_applies() -> None:
    matcher = IntentMatcher(INTENTS)
    near = matcher.match("设定29多", "zh", 0.9)  # Whisper's reading of AISHELL 设定二十九度
    assert near is not None and near.intent == "set_temperature" and near.slots == {"t": "29"}
    assert near.confidence == pytest.approx(0.9 * near.similarity) and near.similarity < 1
    assert matcher.match("设定29多", "zh", 0.3) is None  # below min_confidence 0.5
    assert matcher.match("the weather is nice today", "en", 0.99) is None
    assert matcher.match("好香", "en", 0.99) is None  # phrases are per language


def test_grammar_phrases_expand_slots() -> None:
    phrases = IntentMatcher(INTENTS).phrases("zh")
    assert "鞋子在哪里" in phrases and "水在哪儿" in phrases and "设定29度" in phrases


def test_spec_rejects_undeclared_slot() -> None:
    with pytest.raises(ValidationError, match=r"slot \{item\} has no values"):
        IntentSpec(name="x", phrases={"en": ["where is {item}"]})


def test_pinyin_min_similarity_setting_hears_names_by_sound(tmp_path: object) -> None:
    """``pipelines.speech.pinyin_min_similarity``: a brand heard as a homophone (威灵 written 未灵) still fills
    the slot; with the setting null only the characters count, and the slot goes to the wrong brand or none."""
    pytest.importorskip("pypinyin", reason="pinyin matching needs the optional pypinyin package (speech extra)")
    from pathlib import Path

    from agent.pipelines.speech.build import make_stage
    from agent.pipelines.speech.settings import SpeechSettings

    intent = {
        "name": "ask_product",
        "phrases": {"zh": ["有没有{brand}电器"]},
        "slots": {"brand": ["美的", "威灵", "格力"]},
        "min_confidence": 0.3,
    }
    heard = "请问有没有未灵电器"  # what Whisper wrote for 威灵
    by_sound = make_stage("mic", SpeechSettings(intents=[intent]), Path("/nonexistent"))
    found = by_sound.matcher.match(heard, "zh", 0.9)
    assert found is not None and found.slots == {"brand": "威灵"} and found.similarity == 1.0
    off = make_stage("mic", SpeechSettings(intents=[intent], pinyin_min_similarity=None), Path("/nonexistent"))
    plain = off.matcher.match(heard, "zh", 0.9)
    assert plain is None or plain.slots != {"brand": "威灵"} or plain.similarity < 1.0
