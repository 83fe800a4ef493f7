"""Several real terminals of one store, the hub's fleet coordinator and the brokers between them."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from agent.config.loader import load_config
from agent.trust.keys import terminal_line
from agent.trust.messages import TerminalRegistry
from tests.conftest import require_data
from tests.delivery.conftest import TEST_HUB, Listener, hub_pub_file, registry_for, start_agent
from tests.face.conftest import imread

STORE = "s1"
GALLERY_ENV = "STORE_AGENT_GALLERY_KEY"
STORE_KEY_ENV = "STORE_AGENT_STORE_KEY"


def door_loop(folder: Path) -> Path:
    """A door camera that loops: the member's probe photo (not an enrolment photo) for 1.6 s at 5 fps, then an
    empty doorway for 2.4 s (the face track ends), again and again."""
    from tests.face.test_face_wiring import as_camera_frame

    folder.mkdir(parents=True, exist_ok=True)
    frames = [as_camera_frame(imread(require_data("media/faces/probe") / "obama_a.jpg"))] * 8
    frames += [np.full((480, 640, 3), 60, np.uint8)] * 12
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), frame)
    return folder


def terminal_yaml(directory: Path, terminal: str, port: int, models_dir: Path, door: Path | None, **extra: Any) -> Path:
    """A terminal of store ``s1`` that shares members (identity.sync), with a looping door camera or none."""
    cameras = [{"name": "door", "type": "image-folder", "path": str(door), "fps": 5, "loop": True}] if door else []
    data: dict[str, Any] = {
        "version": 1,
        "store": {"id": STORE, "name": "Fleet store"},
        "terminal": {"id": terminal},
        "mqtt": {"host": "127.0.0.1", "port": port, "health_interval_s": 1},
        "storage": {"state_dir": str(directory / "state")},
        "models": {"directory": str(models_dir)},
        "cameras": cameras,
        "pipelines": {"face": {"enabled": bool(door), "cameras": ["door"] if door else []}},
        "identity": {"sync": {"enabled": True, "store_key_env": STORE_KEY_ENV}},
        "privacy": {"egress": {"biometric_templates": True}},
        "trust": {"hub_keys": [str(hub_pub_file(directory))]},
        "logging": {"level": "INFO"},
    }
    for key, value in extra.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "store.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def hub_registry(path: Path, *configs: Path) -> TerminalRegistry:
    """The hub's registry file of these terminals' keys (made now if a terminal has not started yet)."""
    registry = TerminalRegistry.load(path)
    for (store, terminal), key in registry_for(*(load_config(c).config for c in configs)).keys.items():
        registry.add(store, terminal, terminal_line(key))
    return registry


@dataclass
class Terminal:
    name: str
    config: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_agent(self.config, self.env)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def log(self) -> str:
        path = self.config.parent / "agent.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@dataclass
class Store:
    """The terminals of one store, keyed by id, with the environment they share (store key, gallery key)."""

    terminals: dict[str, Terminal] = field(default_factory=dict)

    def registry(self, path: Path) -> TerminalRegistry:
        """The hub's registry file of these terminals' keys (made now if a terminal has not started yet)."""
        registry = TerminalRegistry.load(path)
        for (store, terminal), key in registry_for(
            *(load_config(t.config).config for t in self.terminals.values())
        ).keys.items():
            registry.add(store, terminal, terminal_line(key))
        return registry

    def stop(self) -> None:
        for terminal in self.terminals.values():
            terminal.stop()


def make_store(root: Path, ports: dict[str, int], models_dir: Path, cameras: set[str], **extra: Any) -> Store:
    env = {GALLERY_ENV: secrets.token_hex(32), STORE_KEY_ENV: secrets.token_hex(32)}
    store = Store()
    for name, port in ports.items():
        door = door_loop(root / name / "door") if name in cameras else None
        store.terminals[name] = Terminal(name, terminal_yaml(root / name, name, port, models_dir, door, **extra), env)
    return store


def jpeg_b64(path: Path, side: int = 480) -> str:
    from tests.face.test_face_wiring import _jpeg_b64

    return _jpeg_b64(path, side)


def ask(listener: Listener, terminal: str, name: str, args: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Send a signed command to a terminal of the store and return its reply."""
    request_id = secrets.token_hex(6)
    base = f"store/{STORE}/{terminal}"
    listener.command(f"{base}/cmd/{name}", {"request_id": request_id, **args}, TEST_HUB)

    def answered(messages: list[tuple[str, dict[str, Any]]]) -> bool:
        return any(p.get("request_id") == request_id for t, p in messages if t.endswith("/reply"))

    assert listener.wait(answered, timeout), f"no reply from {terminal} to {name}"
    return next(p for t, p in listener.messages if t.endswith("/reply") and p.get("request_id") == request_id)


def events_of(listener: Listener, kind: str, terminal: str | None = None) -> list[dict[str, Any]]:
    return [
        p
        for t, p in listener.messages
        if t.endswith(f"/events/{kind}") and (terminal is None or p.get("terminal_id") == terminal)
    ]


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> float | None:
    """Seconds until ``predicate`` held, or None when it did not within ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(step)
    return None


def dump(value: Any) -> str:
    return json.dumps(value, default=str)[:2000]
