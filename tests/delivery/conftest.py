"""A real mosquitto per test session (and per chaos test), configs pointing at it, and MQTT helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config.loader import LoadedConfig, load_config
from agent.delivery.broker import Mosquitto, mosquitto_binary
from agent.delivery.client import Connected, Message, MqttConnection
from agent.schemas import SCHEMA_DIR
from agent.trust.keys import HubPrivateKey, load_or_create_terminal_key
from agent.trust.messages import TerminalRegistry, signed_command
from tests.prereq import require

REPO = Path(__file__).resolve().parents[2]
#: The hub of every test store: its public key is in the test configs (trust.hub_keys), tests sign with it.
TEST_HUB = HubPrivateKey.generate()


def registry_for(*configs: Any) -> TerminalRegistry:
    """The hub's registry of these terminals' keys (each key made now if the terminal has not started yet)."""
    from agent.runtime.trust import terminal_key_path

    registry = TerminalRegistry()
    for config in configs:
        key = load_or_create_terminal_key(terminal_key_path(config))
        registry.add(config.store.id, config.terminal.id, key.line())
    return registry


def hub_pub_file(directory: Path, hub: HubPrivateKey = TEST_HUB) -> Path:
    """``hub.pub`` of ``hub`` in ``directory`` (what `store-agent hub keygen` writes)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"hub-{hub.kid}.pub"
    path.write_text(hub.public.line() + "\n", encoding="ascii")
    return path


def need_mosquitto() -> None:
    if mosquitto_binary() is None:
        require("mosquitto", "not installed (apt install mosquitto)")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto on a free localhost port for the session; tests may stop/kill/restart it."""
    need_mosquitto()
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield server
    server.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of this test's own, for tests that kill it."""
    need_mosquitto()
    server = Mosquitto(tmp_path / "mosquitto").start()
    yield server
    server.stop()


def write_config(directory: Path, port: int, **sections: Any) -> Path:
    """A store YAML with no devices unless ``sections`` adds some; the outbox lives in ``directory``."""
    data: dict[str, Any] = {
        "version": 1,
        "store": {"id": "test-store", "name": "Test"},
        "terminal": {"id": "t1"},
        "mqtt": {"host": "127.0.0.1", "port": port, "health_interval_s": 1},
        "storage": {"state_dir": str(directory / "state")},
        "logging": {"level": "INFO"},
        "trust": {"hub_keys": [str(hub_pub_file(directory))]},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = directory / "store.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def loaded_config(directory: Path, port: int, **sections: Any) -> LoadedConfig:
    return load_config(write_config(directory, port, **sections))


PATTERN_CAMERA = {"name": "cam", "type": "test-pattern", "width": 640, "height": 480, "fps": 10, "walkers": 1}


def start_agent(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``store-agent run`` as a real subprocess; its log goes to ``agent.log`` beside the config (a pipe nobody
    reads would block the agent once its log fills the pipe)."""
    with (config.parent / "agent.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(config)],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


class Listener:
    """A plain subscriber (through the agent's own MQTT client module) that records every message."""

    def __init__(self, port: int, topics: list[str], client_id: str = "test-listener") -> None:
        from agent.config.schema import MqttSection

        self.conn = MqttConnection(MqttSection(host="127.0.0.1", port=port), client_id)
        self.topics = topics
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.conn.start()
        assert self.conn.wait_connected(10), self.conn.last_error
        self._pump(0.2)

    def _pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                item = self.conn.inbox.get(timeout=0.05)
            except Exception:
                continue
            if isinstance(item, Connected):
                self.conn.subscribe(self.topics)
            elif isinstance(item, Message) and item.payload:  # an empty payload clears a retained message
                self.messages.append((item.topic, json.loads(item.payload)))

    def wait(self, predicate: Callable[[list[tuple[str, dict[str, Any]]]], bool], timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.messages):
                return True
            self._pump(0.1)
        return predicate(self.messages)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        assert self.conn.publish(topic, payload, retain=retain) is not None

    def command(self, topic: str, request: dict[str, Any], hub: HubPrivateKey = TEST_HUB, ttl_s: float = 60.0) -> bytes:
        """Publish ``request`` signed by ``hub`` as `store-agent hub send` would; returns the bytes sent."""
        payload = signed_command(hub, topic, request, ttl_s)
        self.publish(topic, payload)
        return payload

    def close(self) -> None:
        self.conn.stop()


def validator(name: str) -> Any:
    """A draft 2020-12 validator for ``agent/schemas/<name>.json`` resolving ``envelope.json``."""
    from jsonschema import Draft202012Validator

    from agent.schemas import registry

    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema, registry=registry())
