"""The hub pushes a store's configs (a base plus per-terminal overrides), signed; each terminal validates,
applies or refuses with the reasons, and reports the hash of the config it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import main as cli_main
from agent.config.loader import config_hash
from agent.delivery.broker import Mosquitto
from tests.delivery.conftest import TEST_HUB, Listener, hub_pub_file, need_mosquitto, start_agent
from tests.fleet.conftest import hub_registry

BASE = {
    "version": 1,
    "store": {"id": "s1", "name": "Push store"},
    "mqtt": {"host": "127.0.0.1", "health_interval_s": 1},
    "cameras": [{"name": "door", "type": "test-pattern", "fps": 5, "width": 320, "height": 240}],
    "logging": {"level": "INFO"},
}


def terminal_file(directory: Path, port: int, **pipelines: Any) -> dict[str, Any]:
    return {
        "base": "store-base.yaml",
        "terminal": {"id": "t1"},
        "mqtt": {"port": port},
        "storage": {"state_dir": str(directory / "state")},
        "trust": {"hub_keys": [str(hub_pub_file(directory))]},
        "pipelines": pipelines,
    }


def write(directory: Path, terminal: dict[str, Any], base: dict[str, Any] = BASE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "store-base.yaml").write_text(yaml.safe_dump(base))
    path = directory / "t1.yaml"
    path.write_text(yaml.safe_dump(terminal))
    return path


def statuses(listener: Listener) -> list[dict[str, Any]]:
    return [p for t, p in listener.messages if t.endswith("/t1/status") and p.get("state") == "online"]


def push(
    hub_dir: Path, pushed: Path, broker_config: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str]:
    key = str(hub_dir / "hub.key")
    code = cli_main(
        ["hub", "push-config", "--config", str(broker_config), "--key", key, "--store", "s1", *extra, str(pushed)]
    )
    return code, capsys.readouterr().out


def test_pushed_config_is_applied_refused_with_reasons_or_applied_by_a_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_mosquitto()
    broker = Mosquitto(tmp_path / "mosquitto").start()
    terminal_dir, hub_dir, pushed = tmp_path / "terminal", tmp_path / "hub", tmp_path / "pushed"
    config = write(terminal_dir, terminal_file(terminal_dir, broker.port))
    hub_dir.mkdir()
    (hub_dir / "hub.key").write_text(TEST_HUB.text())
    hub_registry(hub_dir / "terminals.yaml", config)
    listener = Listener(broker.port, ["store/s1/t1/status"], "push-test")
    agent = start_agent(config)
    try:
        assert listener.wait(lambda m: len(statuses(listener)) >= 1, 60), (terminal_dir / "agent.log").read_text()
        before = statuses(listener)[-1]["config_sha256"]
        assert before == config_hash(config.read_bytes(), (terminal_dir / "store-base.yaml").read_bytes())

        # A valid change: motion on, applied in place; the status reports the new hash.
        new_terminal = terminal_file(terminal_dir, broker.port, motion={"enabled": True, "cameras": ["door"]})
        write(pushed, new_terminal)
        code, out = push(hub_dir, pushed, config, capsys)
        expected = config_hash((pushed / "t1.yaml").read_bytes(), (pushed / "store-base.yaml").read_bytes())
        assert code == 0 and out.strip() == f"t1: applied, config {expected[:12]}", out
        assert listener.wait(lambda m: statuses(listener)[-1]["config_sha256"] == expected, 15)
        assert (terminal_dir / "t1.yaml").read_bytes() == (pushed / "t1.yaml").read_bytes()
        assert (terminal_dir / "t1.yaml.previous").is_file()

        # An invalid base: refused with the file, line and path; nothing written.
        bad_base = {**BASE, "cameras": [{"name": "door", "type": "test-pattern", "fps": -5}]}
        write(pushed, new_terminal, bad_base)
        code, out = push(hub_dir, pushed, config, capsys)
        assert code == 1 and "refused" in out and "pushed store-base.yaml:" in out and "cameras[0].fps" in out, out
        assert (terminal_dir / "store-base.yaml").read_text() == yaml.safe_dump(BASE), "nothing written"

        # A change only a restart applies: refused without --restart; with it the agent exits 75 for systemd.
        moved = {**BASE, "mqtt": {**BASE["mqtt"], "health_interval_s": 2}}
        write(pushed, new_terminal, moved)
        code, out = push(hub_dir, pushed, config, capsys)
        assert code == 1 and "mqtt changed" in out and "restart: true" in out, out
        code, out = push(hub_dir, pushed, config, capsys, "--restart")
        assert code == 0 and out.startswith("t1: restarting"), out
        assert agent.wait(30) == 75, "run exits 75 so that systemd (Restart=on-failure) starts the new config"
        agent = start_agent(config)
        moved_hash = config_hash((pushed / "t1.yaml").read_bytes(), (pushed / "store-base.yaml").read_bytes())
        assert listener.wait(lambda m: statuses(listener)[-1]["config_sha256"] == moved_hash, 60)

        # No terminal answering: 69.
        agent.terminate()
        agent.wait(30)
        code, out = push(hub_dir, pushed, config, capsys, "--timeout", "3")
        assert code == 69 and "no reply" in out, out
    finally:
        if agent.poll() is None:
            agent.terminate()
            agent.wait(30)
        listener.close()
        broker.stop()
