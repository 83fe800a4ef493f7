"""Store config: the shipped files validate; every class of bad input names file, line, path and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.loader import ConfigError, load_config, parse_config
from agent.config.schema import StoreConfig
from tests.conftest import REPO
from tests.media import config_text, write_video, write_wav


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "store.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("name", ["store-example.yaml", "demo.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    loaded = load_config(REPO / "config" / name)
    assert loaded.config.store.id
    assert len(loaded.sha256) == 64


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    write_video(tmp_path / "media" / "clip.avi")
    path = tmp_path / "store.yaml"
    path.write_text(config_text(Path("state"), "cameras:\n  - {name: cam, type: video-file, path: media/clip.avi}\n"))
    config = load_config(path).config
    assert config.cameras[0].path == tmp_path / "media" / "clip.avi"
    assert config.storage.state_dir == tmp_path / "state"


def test_wrong_value_names_line_path_and_value(tmp_path: Path) -> None:
    text = config_text(
        tmp_path,
        "cameras:\n  - {name: a, type: test-pattern}\n  - name: b\n    type: test-pattern\n    fps: -5\n",
    )
    out = problems(tmp_path, text)
    line = text.splitlines().index("    fps: -5") + 1
    assert out == [f"{tmp_path / 'store.yaml'}:{line}: cameras[1].fps: must be greater than 0 (got -5)"]


def test_all_errors_are_reported_at_once(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "store:\n"
        "  id: Bad Store\n"
        "  name: x\n"
        "  timezone: Mars/Base\n"
        "terminal:\n"
        "  id: t1\n"
        "  colour: red\n"
        "cameras:\n"
        "  - {name: d, type: webcam}\n"
    )
    out = problems(tmp_path, text)
    assert len(out) == 4, out
    assert ":3: store.id: must match pattern" in out[0] and "(got 'Bad Store')" in out[0]
    assert ":5: store.timezone: unknown IANA time zone 'Mars/Base'" in out[1]
    assert ":8: terminal.colour: unknown key" in out[2]
    assert ":10: cameras[0]: unknown type 'webcam'; expected one of" in out[3]


def test_missing_required_section(tmp_path: Path) -> None:
    out = problems(tmp_path, "version: 1\nstore: {id: s, name: S}\n")
    assert out == [f"{tmp_path / 'store.yaml'}:1: terminal: required key is missing"]


def test_wrong_type(tmp_path: Path) -> None:
    out = problems(tmp_path, config_text(tmp_path, "pipelines:\n  motion:\n    enabled: maybe\n"))
    assert len(out) == 1 and "pipelines.motion.enabled: must be a valid boolean" in out[0] and "(got 'maybe')" in out[0]


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    out = problems(tmp_path, "version: 1\nstore:\n  id: [unclosed\n  name: x\nterminal: {id: t}\n")
    assert len(out) == 1 and "malformed YAML" in out[0]
    assert out[0].startswith(f"{tmp_path / 'store.yaml'}:")


def test_not_a_mapping(tmp_path: Path) -> None:
    assert "must be a YAML mapping" in problems(tmp_path, "- just\n- a list\n")[0]


def test_missing_and_wrong_media_files(tmp_path: Path) -> None:
    (tmp_path / "fake.mp4").write_text("this is not a video")
    (tmp_path / "fake.wav").write_text("RIFF but not really")
    text = config_text(
        tmp_path,
        "cameras:\n"
        f"  - {{name: a, type: video-file, path: {tmp_path}/missing.mp4}}\n"
        f"  - {{name: b, type: video-file, path: {tmp_path}/fake.mp4}}\n"
        f"  - {{name: c, type: image-folder, path: {tmp_path}}}\n"
        "microphones:\n"
        f"  - {{name: m, type: wav-file, path: {tmp_path}/fake.wav}}\n",
    )
    out = problems(tmp_path, text)
    assert len(out) == 4, out
    assert ":8: cameras[0].path: file not found" in out[0]
    assert ":9: cameras[1].path: not a readable video file" in out[1]
    assert ":10: cameras[2].path: no images" in out[2]
    assert ":12: microphones[0].path: not a PCM WAV file" in out[3]


def test_disabled_device_may_name_a_missing_file(tmp_path: Path) -> None:
    text = config_text(
        tmp_path, f"cameras:\n  - {{name: a, type: video-file, enabled: false, path: {tmp_path}/x.mp4}}\n"
    )
    config = parse_config(text)
    assert config.devices() == []


def test_duplicate_device_names_and_dangling_pipeline_references(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", 0.5, 16000)
    dup = config_text(
        tmp_path,
        "cameras:\n  - {name: a, type: test-pattern}\n"
        f"microphones:\n  - {{name: a, type: wav-file, path: {tmp_path}/a.wav}}\n",
    )
    assert "microphones[0].name: device name 'a' is already used by cameras[0]" in problems(tmp_path, dup)[0]
    dangling = config_text(tmp_path, "pipelines:\n  motion: {enabled: true, cameras: [door]}\n")
    out = problems(tmp_path, dangling)
    assert "pipelines.motion.cameras[0]: no enabled camera named 'door'" in out[0]
    assert ":8:" in out[0]  # the line of pipelines.motion.cameras


def test_secrets_are_not_accepted_inline(tmp_path: Path) -> None:
    out = problems(tmp_path, config_text(tmp_path, "mqtt: {username: u, password: hunter2}\n"))
    assert "mqtt.password: unknown key" in out[0]
    assert "hunter2" not in out[0]


def test_every_setting_is_described_and_shown_in_the_example() -> None:
    """The field descriptions are the config reference, and the example shows every key."""
    example = (REPO / "config" / "store-example.yaml").read_text()
    missing_docs: list[str] = []
    missing_example: list[str] = []

    def walk(model: type, prefix: str) -> None:
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            path = f"{prefix}.{name}" if prefix else name
            if not field.description and not (
                isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields")
            ):
                missing_docs.append(path)
            if f"{name}:" not in example:
                missing_example.append(path)
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                walk(annotation, path)

    walk(StoreConfig, "")
    from drivers.registry import REGISTRY, options_models

    for kind in REGISTRY:
        for type_name in REGISTRY[kind]:
            if f"type: {type_name}" not in example:
                missing_example.append(f"{kind} type {type_name}")
        for options in options_models(kind):  # type: ignore[arg-type]
            walk(options, f"{kind}:{options.model_fields['type'].annotation}")
    assert missing_docs == []
    assert missing_example == []


def test_speech_microphones_must_deliver_16k(tmp_path: Path) -> None:
    """The drivers resample to their sample_rate; the speech pipeline takes 16 kHz only (no per-chunk resampling)."""
    mics = "microphones:\n  - {name: counter, type: sounddevice, sample_rate: 48000}\n"
    out = problems(tmp_path, config_text(tmp_path, mics + "pipelines:\n  speech: {enabled: true}\n"))
    assert (
        len(out) == 1
        and ":8: microphones[0].sample_rate: the speech pipeline listens at 16000 Hz (got 48000)" in out[0]
    )
    # Without speech, or with speech on another microphone, any rate is fine.
    assert parse_config(config_text(tmp_path, mics), base_dir=tmp_path).microphones[0].name == "counter"


def test_yaml_anchors_and_aliases_are_refused_with_the_line(tmp_path: Path) -> None:
    """A "billion laughs" config (nested aliases) is refused before anything expands."""
    laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    text = config_text(tmp_path, "") + "x-extra:\n" + "".join("  " + line + "\n" for line in laughs.splitlines())
    out = problems(tmp_path, text)
    line = text.splitlines().index("x-extra:") + 2
    assert out == [
        f"{tmp_path / 'store.yaml'}:{line}: YAML anchors and aliases (&name, *name) are not allowed in a config"
    ]


def test_version_is_the_config_format_and_only_1_is_read(tmp_path: Path) -> None:
    """``version`` says which format the file is in; a file in another (or no) format is refused, not guessed at."""
    assert parse_config(config_text(tmp_path, ""), base_dir=tmp_path).version == 1
    out = problems(tmp_path, config_text(tmp_path, "").replace("version: 1", "version: 2"))
    assert out == [f"{tmp_path / 'store.yaml'}:1: version: must be 1 (got 2)"]
    out = problems(tmp_path, config_text(tmp_path, "").replace("version: 1\n", ""))
    assert len(out) == 1 and "version: required key is missing" in out[0]
