"""The hub tool as a store would use it: make the hub's keys, register a terminal, send a signed erase and see it
confirmed by that terminal (its reply's MAC checked); a hub key the terminal does not trust is refused."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from agent.delivery.broker import Mosquitto
from tests.delivery.conftest import PATTERN_CAMERA, REPO, Listener, start_agent, write_config


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_keygen_register_and_a_confirmed_signed_erase(broker: Mosquitto, tmp_path: Path) -> None:
    hub_dir = tmp_path / "hub"
    made = cli("hub", "keygen", "--out", str(hub_dir))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(os.stat(hub_dir / "hub.key").st_mode) == 0o600
    assert cli("hub", "keygen", "--out", str(hub_dir)).returncode == 1, "an existing key is never overwritten silently"

    config = write_config(
        tmp_path / "terminal",
        broker.port,
        terminal={"id": "desk"},
        cameras=[PATTERN_CAMERA],
        trust={"hub_keys": [str(hub_dir / "hub.pub")]},
    )
    shown = cli("keys", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    store, terminal, line = shown.stdout.strip().split(" ", 2)
    assert (store, terminal) == ("test-store", "desk") and line.startswith("store-agent-terminal-v1 ")
    registered = cli("hub", "register", "--terminals", str(hub_dir / "terminals.yaml"), store, terminal, line)
    assert registered.returncode == 0, registered.stderr

    listener = Listener(broker.port, ["store/test-store/desk/status"], "hub-cli-wait")
    agent = start_agent(config, {"STORE_AGENT_GALLERY_KEY": "cd" * 32})
    try:
        assert listener.wait(lambda m: any(p.get("state") == "online" for _, p in m), timeout=60)
        base = ["hub", "send", "--config", str(config), "--key", str(hub_dir / "hub.key"), "--terminal", "desk"]
        erased = cli(*base, "erase-member", '{"member_id": "M-1"}')
        assert erased.returncode == 0, erased.stderr
        reply = json.loads(erased.stdout)
        assert reply["ok"] and reply["command"] == "erase-member" and reply["result"]["member_id"] == "M-1"

        stranger = tmp_path / "stranger"
        assert cli("hub", "keygen", "--out", str(stranger)).returncode == 0
        registry = ["--terminals", str(hub_dir / "terminals.yaml")]
        forged = cli(
            "hub", "send", "--config", str(config), "--key", str(stranger / "hub.key"), *registry,
            "--terminal", "desk", "erase-member", '{"member_id": "M-1"}',
        )  # fmt: skip
        assert forged.returncode == 1, forged.stderr
        assert "does not trust" in json.loads(forged.stdout)["error"]

        nobody = cli(*base, "--terminal", "absent", "--timeout", "3", "ping")
        assert nobody.returncode == 69 and "no reply" in nobody.stderr
        bad = cli(*base, "erase-member", "{not json")
        assert bad.returncode == 2 and "not JSON" in bad.stderr
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)
        listener.close()
