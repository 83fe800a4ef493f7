"""Start-up failures: each is one line on stderr and its documented exit code (78 config/secret, 69 missing model),
no traceback, before anything connects; ``check-config --strict`` finds the same problems (and missing devices)
without starting the daemon, and a clean strict report means the daemon starts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config.loader import load_config
from agent.delivery.broker import free_port
from tests.conftest import REPO, require_data
from tests.media import config_text

KEY = "ab" * 32


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "STORE_AGENT_GALLERY_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, **(env or {})},
    )


def store(tmp_path: Path, body: str = "") -> Path:
    path = tmp_path / "store.yaml"
    mqtt = f"mqtt: {{host: 127.0.0.1, port: {free_port()}}}\n"  # nobody listens: a start-up failure is not MQTT's
    path.write_text(config_text(tmp_path / "state", body + mqtt))
    return path


def corrupt_counters(tmp_path: Path) -> str:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "counters.json").write_text('{"boot_count": 3, "seq_res')  # cut by a power loss
    return ""


def face_without_key(tmp_path: Path) -> str:
    return "cameras: [{name: door, type: test-pattern}]\npipelines: {face: {enabled: true}}\n"


def gallery_not_a_database(tmp_path: Path) -> str:
    (tmp_path / "state" / "identity").mkdir(parents=True)
    (tmp_path / "state" / "identity" / "gallery.db").write_bytes(b"\x89PNG this is a photo, not a gallery" * 100)
    return face_without_key(tmp_path)


def model_missing(tmp_path: Path) -> str:
    (tmp_path / "no-models").mkdir()
    return (
        "cameras: [{name: door, type: test-pattern}]\npipelines: {people: {enabled: true}}\n"
        f"models: {{directory: {tmp_path / 'no-models'}}}\n"
    )


def state_dir_is_a_file(tmp_path: Path) -> str:
    (tmp_path / "state").write_text("not a directory")
    return ""


CASES: list[tuple[Callable[[Path], str], int, str, dict[str, str]]] = [
    (corrupt_counters, 78, "counters.json is corrupt or unreadable", {}),
    (face_without_key, 78, "pipelines.face: no gallery key found", {}),
    (
        gallery_not_a_database,
        78,
        "cannot be read as a database (file is not a database)",
        {"STORE_AGENT_GALLERY_KEY": KEY},
    ),
    (model_missing, 69, "pipelines.people: model 'yolox-nano' is missing", {}),
    (state_dir_is_a_file, 78, "storage.state_dir:", {}),
]


@pytest.mark.parametrize(("make", "code", "message", "env"), CASES, ids=[c[0].__name__ for c in CASES])
def test_each_start_up_failure_is_one_line_and_its_exit_code(
    tmp_path: Path, make: Callable[[Path], str], code: int, message: str, env: dict[str, str]
) -> None:
    config = store(tmp_path, make(tmp_path))
    result = cli("run", "--config", str(config), env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "outbox.sqlite3").exists(), "nothing was opened before the check"
    strict = cli("check-config", "--strict", str(config), env=env)
    assert strict.returncode == code and message in strict.stderr, strict.stderr
    assert "the daemon would not start" in strict.stderr
    debug = cli("--debug", "run", "--config", str(config), env=env)
    assert debug.returncode != 0 and "Traceback" in debug.stderr, "--debug shows the traceback"


def test_strict_check_lists_every_problem_and_missing_devices(tmp_path: Path) -> None:
    config = store(
        tmp_path,
        "serial:\n"
        "  - {name: reader, type: pn532, port: /dev/ttyUSB-not-there}\n"
        "cameras:\n"
        "  - {name: door, type: v4l2, device: /dev/video-not-there}\n"
        "identity: {cards: {secret_env: CARD_SECRET_NOT_SET}}\n" + face_without_key(tmp_path).split("\n", 1)[1],
    )
    result = cli("check-config", "--strict", str(config))
    assert result.returncode == 78, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 8, result.stderr  # and the face pipeline's four models, not provisioned there
    assert sum("pipelines.face: model '" in e and "is missing" in e for e in errors) == 4
    assert any("identity.cards: card secret: environment variable CARD_SECRET_NOT_SET is not set" in e for e in errors)
    assert any("pipelines.face: no gallery key found" in e for e in errors)
    assert any("serial[0] (reader): /dev/ttyUSB-not-there does not exist" in e for e in errors)
    assert any("cameras[0] (door): /dev/video-not-there does not exist" in e for e in errors)
    plain = cli("check-config", str(config))
    assert plain.returncode == 0, "without --strict only the config itself is checked"


def test_only_devices_missing_is_69_and_the_daemon_would_still_start(tmp_path: Path) -> None:
    config = store(tmp_path, "serial:\n  - {name: scanner, type: barcode, port: /dev/ttyACM-not-there}\n")
    result = cli("check-config", "--strict", str(config))
    assert result.returncode == 69, result.stderr
    assert "the daemon starts, but these devices stay offline" in result.stderr


def test_a_clean_strict_report_means_the_daemon_starts(tmp_path: Path) -> None:
    """Face (gallery key, models), a card reader on a real pseudo-terminal (card secret), a camera: strict says the
    daemon will start, and it does."""
    from agent.runtime.daemon import Daemon

    models = require_data("models")
    controller, device = os.openpty()
    try:
        port = os.ttyname(device)
        config = store(
            tmp_path,
            "cameras: [{name: door, type: test-pattern, fps: 5}]\n"
            f"serial: [{{name: reader, type: pn532, port: {port}}}]\n"
            "identity: {cards: {secret_env: CARD_SECRET}}\n"
            "pipelines: {face: {enabled: true}}\n"
            f"models: {{directory: {models}}}\n",
        )
        env = {"STORE_AGENT_GALLERY_KEY": KEY, "CARD_SECRET": "s" * 32}
        result = cli("check-config", "--strict", str(config), env=env)
        assert result.returncode == 0, result.stderr
        assert "preflight secrets, gallery, 4 model(s), 1 device path(s): the daemon will start" in result.stdout
        os.environ.update(env)
        try:
            with Daemon(load_config(config)) as daemon:
                assert daemon.agent.ready.is_set()
        finally:
            for name in env:
                os.environ.pop(name, None)
    finally:
        os.close(controller)
        os.close(device)
