"""Mandarin evaluation split by speaker, for names: a tuning speaker and unseen reporting speakers.

- tuning: AISHELL-1 speaker S0150 (shared data, 112 utterances: temperature commands, 28 shop and place
  names, song titles, phone numbers, news). Every choice (prompt budget, pinyin threshold) is made here.
- reporting: AISHELL-1 test speaker S0913, male, never used for tuning: the 24 of his utterances that are
  in the Test-Aishell1-NE hotword subset (brand names 美的 / 美芝 / 威灵 and their products, a park, person
  names). Audio from github.com/jackaduma/CycleGAN-VC2 (data/S0913, MIT repo; AISHELL-1 itself is
  Apache-2.0), transcripts from github.com/R1ckShi/SeACo-Paraformer (data/test/text), both fetched to
  ``$STORE_AGENT_EXTRA_DATA/aishell1_S0913`` (default /work/extra-data); never committed.
  Plus the four FireRedASR clips of four other speakers (shared data): CER, and false intents (none of
  them names the reporting store's products).

Intents are chosen from what each split's speakers actually say, because no recording of shoppers
saying store sentences exists here: the tuning set's places and songs, the reporting set's brands and
their product words. The expected intent of an utterance is what the matcher finds in its reference
transcript, so a recognition error that changes the name changes the outcome.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.pipelines.speech.evaluation import aishell_refs, fireredasr_refs
from agent.pipelines.speech.intents import IntentMatcher
from agent.pipelines.speech.settings import IntentSpec
from agent.pipelines.speech.textnorm import normalize
from models.speech.pinyin import expansions


def _words(text: str) -> list[str]:
    return text.split()


_PLACES = _words("""哈根达斯 九井日本料理 老洋房花园饭店 上海孙中山故居纪念馆 孔家花园
尚街Loft时尚生活园区 潍坊路小游园 星巴克咖啡 百盛 上海市第一食品商店
盛源生活广场 崇明岛 孔乙己酒家 东北饺子王 西堤牛排 三叶眼镜城 渔具水族馆 上海人家
瑞福园茂名店 外滩名店 绍兴饭店 世纪公园 上海嘉定南翔寺 龙耀滨江广场
杭州大厦购物城超市 东方商厦 丁香夏朵花园 舒友海鲜大酒楼""")
_SONGS = _words("""幸运符号 星座恋人 我的滑板鞋 等你等了那么久 又见高原红 剑心 爱不可及 爸爸去哪儿
父亲 自由自在 去大理 致青春 老男孩 又见山里红 你是我今生的依靠 红豆 风月
给我一个理由忘记 小鸡小鸡 我的歌声里 你把爱情给了谁 我们好像在哪见过 卷珠帘
不再联系 一辈子的爱 有一个地方 时间煮雨 海阔天空 魔法城堡 如果没有你 金玉良缘
逆战 爱你一生 新贵妃醉酒 稳稳的幸福 唱着情歌流着泪 时间都去哪儿了 荷塘月色
兄弟抱一下 爱情路""")

TUNING_INTENTS = [
    IntentSpec(name="set_temperature", phrases={"zh": ["设定{t}度"]}, slots={"t": [str(i) for i in range(16, 33)]}),
    IntentSpec(name="raise_temperature", phrases={"zh": ["调高温度"]}),
    IntentSpec(name="play_song", phrases={"zh": ["想听歌曲{song}", "来一首歌曲{song}"]}, slots={"song": _SONGS}),
    IntentSpec(name="find_place", phrases={"zh": ["{place}"]}, slots={"place": _PLACES}),
]
REPORTING_INTENTS = [
    IntentSpec(
        name="ask_product",
        phrases={"zh": ["{brand}{product}"]},
        slots={"brand": ["美的", "美芝", "威灵"], "product": ["压缩机", "电机", "电器", "集团", "部品事业部"]},
    ),
    IntentSpec(name="find_place", phrases={"zh": ["{place}"]}, slots={"place": ["丁香湖公园"]}),
]


def extra_data() -> Path:
    return Path(os.environ.get("STORE_AGENT_EXTRA_DATA", "/work/extra-data"))


def tsv_refs(path: Path) -> dict[str, str]:
    """``id TAB text`` lines."""
    refs: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        ident, _, text = line.partition("\t")
        if ident.strip():
            refs[ident.strip()] = text.strip()
    return refs


@dataclass(frozen=True)
class SpeakerSet:
    """One speaker group: where its WAVs are, their references, the intents a store would configure for it."""

    name: str
    part: str  # "tuning" or "reporting"
    wav_dir: Path
    refs: dict[str, str]
    intents: list[IntentSpec]

    def wav(self, ident: str) -> Path:
        return self.wav_dir / f"{ident}.wav"


def tuning_set(speech_dir: Path) -> SpeakerSet:
    folder = speech_dir / "zh/aishell"
    return SpeakerSet("aishell1-S0150", "tuning", folder, aishell_refs(folder), TUNING_INTENTS)


def reporting_sets(speech_dir: Path) -> list[SpeakerSet]:
    """S0913 when its fetched data is there (else left out), and the FireRedASR clips (CER only)."""
    sets: list[SpeakerSet] = []
    s0913 = extra_data() / "aishell1_S0913"
    if (s0913 / "transcripts.tsv").is_file():
        sets.append(
            SpeakerSet(
                "aishell1-S0913", "reporting", s0913 / "wav", tsv_refs(s0913 / "transcripts.tsv"), REPORTING_INTENTS
            )
        )
    fire = speech_dir / "zh/fireredasr"
    # The reporting store's intents: none of these sentences names its products, so any intent is a false one.
    sets.append(SpeakerSet("fireredasr-4spk", "reporting", fire, fireredasr_refs(fire), REPORTING_INTENTS))
    return sets


def zh(text: str) -> str:
    return normalize(text, "zh")


class NameMatcher:
    """The agent's own matcher (IntentMatcher with pinyin matching), for Mandarin, optionally with every intent's
    ``min_confidence`` set to one value (the setting tuned on the tuning speaker)."""

    def __init__(
        self, intents: list[IntentSpec], pinyin_min: float | None, min_confidence: float | None = None
    ) -> None:
        if min_confidence is not None:
            intents = [i.model_copy(update={"min_confidence": min_confidence}) for i in intents]
        self.matcher = IntentMatcher(intents, pinyin_min=pinyin_min)
        self.intents = self.matcher.intents

    def match(self, text: str, asr_confidence: float) -> tuple[str, dict[str, str]] | None:
        found = self.matcher.match(text, "zh", asr_confidence)
        return (found.intent, found.slots) if found is not None else None


def mentions(intents: list[IntentSpec], reference: str) -> list[tuple[str, dict[str, str]]]:
    """Every phrase said in the reference transcript, exactly (the truth is not fuzzy); [] when none.

    A sentence may name two products (美芝压缩机 and 威灵电机); the recogniser's intent counts as right when
    it is any of them.
    """
    text = zh(reference)
    found = [(i.name, slots) for i in intents for phrase, slots in expansions(i, "zh") if zh(phrase) in text]
    return [m for k, m in enumerate(found) if m not in found[:k]]


def intent_accuracy(
    matcher: NameMatcher,
    pairs: list[tuple[str, str, float]],
    on_error: Callable[[str, str, object, object], None] | None = None,
) -> tuple[float, int]:
    """Share of (reference, hypothesis, confidence) whose intent and slots equal the reference's; and the count."""
    correct = 0
    for reference, heard, confidence in pairs:
        want, got = mentions(list(matcher.intents.values()), reference), matcher.match(heard, confidence)
        correct += got in want if want else got is None
        if (got not in want if want else got is not None) and on_error is not None:
            on_error(reference, heard, want, got)
    return (correct / len(pairs) if pairs else 0.0), len(pairs)
