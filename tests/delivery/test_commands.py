"""Commands over MQTT against the running daemon: each works; bad requests get error replies and change nothing."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from agent.commands.base import MAX_COMMAND_BYTES
from agent.delivery.broker import Mosquitto
from agent.runtime.daemon import Daemon
from tests.delivery.conftest import PATTERN_CAMERA, Listener, loaded_config, validator

BASE = "store/test-store/t1"


def ask(listener: Listener, name: str, payload: bytes | dict[str, Any]) -> dict[str, Any]:
    """A request: a dict is signed by the test hub, bytes are sent as they are."""
    before = len(listener.messages)
    topic = f"{BASE}/cmd/{name}"
    if isinstance(payload, dict):
        listener.command(topic, payload)
    else:
        listener.publish(topic, payload)
    assert listener.wait(lambda m: len(m) > before, timeout=15), f"no reply to {name}"
    topic, reply = listener.messages[before]
    assert topic == f"{BASE}/cmd/{name}/reply"
    validator("command-reply").validate(reply)
    return reply


def test_commands(broker: Mosquitto, tmp_path: Path) -> None:
    loaded = loaded_config(tmp_path, broker.port, cameras=[PATTERN_CAMERA])
    daemon = Daemon(loaded)
    with daemon:
        server = threading.Thread(target=daemon.serve, daemon=True)
        server.start()
        listener = Listener(broker.port, [f"{BASE}/cmd/+/reply"], "test-commands")
        try:
            assert daemon.publisher.conn.wait_connected(10)
            reply = ask(listener, "ping", b'{"request_id": "r1"}')
            assert reply["ok"] and reply["request_id"] == "r1" and reply["result"]["pong"] is True

            reply = ask(listener, "outbox-stats", {"request_id": "r2"})
            assert reply["ok"] and "depth" in reply["result"] and reply["result"]["max_rows"] == 200_000

            reply = ask(listener, "set-log-level", {"request_id": "r3", "level": "DEBUG", "logger": "drivers"})
            assert reply["ok"] and logging.getLogger("drivers").level == logging.DEBUG
            reply = ask(listener, "set-log-level", {"request_id": "r4", "level": "LOUD"})
            assert not reply["ok"] and "level must be one of" in reply["error"]

            agent_before, sha_before = daemon.agent, daemon.loaded.sha256
            config_path = loaded.path
            good = config_path.read_text()

            config_path.write_text(good.replace("fps: 10", "fps: -5"))
            reply = ask(listener, "reload-config", {"request_id": "r5"})
            assert not reply["ok"] and "fps" in reply["error"] and "must be greater than 0" in reply["error"]
            assert daemon.agent is agent_before and daemon.loaded.sha256 == sha_before, (
                "invalid config: nothing changed"
            )

            config_path.write_text(good.replace("fps: 10", "fps: 5"))
            reply = ask(listener, "reload-config", {"request_id": "r6"})
            assert reply["ok"] and reply["result"]["changed"] is True, reply
            assert daemon.agent is not agent_before and daemon.agent.sources[0].driver.options.fps == 5
            assert daemon.agent.sources[0].thread.is_alive()

            config_path.write_text(good.replace("port: ", "keepalive_s: 40\n  port: "))
            reply = ask(listener, "reload-config", {"request_id": "r7"})
            assert not reply["ok"] and "mqtt changed: restart" in reply["error"]

            agent_now = daemon.agent
            reply = ask(listener, "ping", b"{not json")
            assert not reply["ok"] and reply["request_id"] is None and "malformed JSON" in reply["error"]
            reply = ask(listener, "self-destruct", {"request_id": "r8"})
            assert not reply["ok"] and reply["request_id"] == "r8" and "unknown command" in reply["error"]
            big = json.dumps({"request_id": "r9", "pad": "x" * MAX_COMMAND_BYTES}).encode()
            reply = ask(listener, "reload-config", big)
            assert not reply["ok"] and "limit" in reply["error"]
            reply = ask(listener, "ping", b"[1, 2]")
            assert not reply["ok"] and "JSON object" in reply["error"]
            assert daemon.agent is agent_now, "bad requests change nothing"
        finally:
            daemon.stop_event.set()
            server.join(10)  # serve() ends before the daemon closes, as in `store-agent run`
            listener.close()
    logging.getLogger("drivers").setLevel(logging.NOTSET)
