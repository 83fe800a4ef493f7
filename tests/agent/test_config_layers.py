"""A store's terminals share one base config and keep small overrides of their own (``base:``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.loader import ConfigError, config_hash, load_config

BASE = """\
version: 1
store: {id: s1, name: Nanjing Road, timezone: Asia/Shanghai}
terminal: {id: base}
mqtt: {host: broker.store.lan, port: 1883, health_interval_s: 30}
cameras:
  - {name: door, type: test-pattern, fps: 10}
pipelines:
  motion: {enabled: true, min_area: 0.02}
"""

TERMINAL = """\
base: store-base.yaml
terminal: {id: kiosk-2}
mqtt: {health_interval_s: 5}
cameras:
  - {name: kiosk, type: test-pattern, fps: 5}
pipelines:
  motion: {cameras: [kiosk]}
"""


def write(directory: Path, base: str = BASE, terminal: str = TERMINAL) -> Path:
    (directory / "store-base.yaml").write_text(base)
    path = directory / "kiosk-2.yaml"
    path.write_text(terminal)
    return path


def test_terminal_overrides_merge_key_by_key_over_the_base(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path))
    config = loaded.config
    assert (config.store.id, config.store.timezone, config.terminal.id) == ("s1", "Asia/Shanghai", "kiosk-2")
    assert (config.mqtt.host, config.mqtt.health_interval_s) == ("broker.store.lan", 5), "mappings merge"
    assert [c.name for c in config.cameras] == ["kiosk"], "lists are replaced, not appended"
    assert config.pipelines.enabled_names() == ["motion"]
    assert loaded.base == "store-base.yaml"
    raw = (tmp_path / "kiosk-2.yaml").read_bytes(), (tmp_path / "store-base.yaml").read_bytes()
    assert loaded.sha256 == config_hash(*raw) != config_hash(raw[0])
    (tmp_path / "store-base.yaml").write_text(BASE.replace("port: 1883", "port: 8883"))
    assert load_config(tmp_path / "kiosk-2.yaml").sha256 != loaded.sha256, "a change to the base changes the hash"


def test_each_problem_names_the_file_that_set_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("port: 1883", "port: 70000"), TERMINAL.replace("fps: 5", "fps: -5"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = sorted(str(p) for p in info.value.problems)
    assert found == sorted(
        [
            f"{path}:5: cameras[0].fps: must be greater than 0 (got -5)",
            f"{tmp_path / 'store-base.yaml'}:4: mqtt.port: must be less than 65536 (got 70000)",
        ]
    ), found


@pytest.mark.parametrize(
    ("terminal", "base", "message"),
    [
        (TERMINAL.replace("store-base.yaml", "../etc/passwd.yaml"), BASE, "base: must be a file name in the same"),
        (TERMINAL.replace("store-base.yaml", "missing.yaml"), BASE, "cannot read config file"),
        (TERMINAL, "base: other.yaml\n" + BASE, "cannot name a base of its own"),
        (TERMINAL, "- a list\n", "must be a YAML mapping"),
    ],
)
def test_a_bad_base_is_one_clear_error(tmp_path: Path, terminal: str, base: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, base, terminal))
