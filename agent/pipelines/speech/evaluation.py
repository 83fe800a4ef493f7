"""Reference corpora in the shared data and error rates, for the speech tests and ``bench/speech_accuracy.py``.

Each reader returns ``{utterance id: reference text}`` for a folder under
``media/speech``; the WAV for an id is ``<folder>/<id>.wav``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.pipelines.speech.textnorm import edit_distance, normalize, tokens

logger = logging.getLogger(__name__)


def aishell_refs(folder: Path) -> dict[str, str]:
    """``zh/aishell/transcripts.tsv``: id TAB text (the file starts with a byte-order mark)."""
    refs: dict[str, str] = {}
    for line in (folder / "transcripts.tsv").read_text(encoding="utf-8").splitlines():
        ident, _, text = line.replace("\ufeff", "").partition("\t")
        if ident.strip():
            refs[ident.strip()] = text.strip()
    return dict(sorted(refs.items()))


def fireredasr_refs(folder: Path) -> dict[str, str]:
    """``zh/fireredasr/text``: id SPACE text (Kaldi style, text may hold spaces)."""
    refs: dict[str, str] = {}
    for line in (folder / "text").read_text(encoding="utf-8").splitlines():
        ident, _, text = line.partition(" ")
        if ident.strip():
            refs[ident.strip()] = "".join(text.split())
    return refs


def librivox_refs(folder: Path) -> dict[str, str]:
    """``en/librivox_transcription.txt``: ``<s> text </s> (id)`` (CMU Sphinx test format)."""
    refs: dict[str, str] = {}
    for line in (folder / "librivox_transcription.txt").read_text(encoding="utf-8").splitlines():
        text, _, ident = line.replace("<s>", "").replace("</s>", "").rpartition("(")
        if ident.strip(") ") and (folder / f"{ident.strip(') ')}.wav").is_file():
            refs[ident.strip(") ")] = text.strip()
    return refs


def error_rate(pairs: list[tuple[str, str]], language: str) -> float:
    """Word (or, for Chinese, character) error rate of (reference, hypothesis) pairs after normalisation."""
    errors = sum(
        edit_distance(tokens(normalize(r, language), language), tokens(normalize(h, language), language))
        for r, h in pairs
    )
    total = sum(len(tokens(normalize(r, language), language)) for r, _ in pairs)
    return errors / total if total else 0.0
