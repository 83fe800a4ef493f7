"""The ``store``, ``terminal``, ``mqtt`` and ``storage`` settings, each shown taking effect on a real mosquitto.

What reaches the broker is read from the broker itself: mosquitto logs every CONNECT with the client id,
protocol level, keep-alive and user name; what the hub would see is what a plain subscriber receives.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config.loader import load_config
from agent.delivery.broker import Mosquitto
from agent.delivery.client import MqttConnection
from agent.pipelines.serial.events import BarcodeScanned
from agent.runtime.daemon import Daemon
from agent.trust.messages import signed_ack
from tests.delivery.conftest import TEST_HUB, Listener, loaded_config, need_mosquitto, validator, write_config
from tests.prereq import require


def connect_lines(broker: Mosquitto, client_id: str) -> list[str]:
    """mosquitto's "New client connected ... as <id> (p<protocol>, c<clean>, k<keepalive>[, u'<user>'])" lines."""
    pattern = re.compile(rf"New client connected from \S+ as {re.escape(client_id)} \((.*)\)\.")
    return [m.group(1) for m in pattern.finditer(broker.log.read_text(errors="replace"))]


def folder(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(predicate())


def test_connect_carries_client_id_protocol_keepalive_and_user(broker: Mosquitto, tmp_path: Path) -> None:
    """``client_id`` (default ``<store>-<terminal>``), ``protocol``, ``keepalive_s`` and ``username`` are what the
    broker receives in the daemon's CONNECT."""
    custom = loaded_config(
        folder(tmp_path, "custom"),
        broker.port,
        terminal={"id": "t7"},
        mqtt={"client_id": "kiosk-7-agent", "protocol": "3.1.1", "keepalive_s": 17, "username": "terminal-7"},
    )
    plain = loaded_config(folder(tmp_path, "plain"), broker.port, terminal={"id": "t8"})
    for loaded in (custom, plain):
        with Daemon(loaded) as daemon:
            assert daemon.publisher.conn.wait_connected(10), daemon.publisher.conn.last_error
    assert wait_for(lambda: connect_lines(broker, "kiosk-7-agent") and connect_lines(broker, "test-store-t8"))
    assert connect_lines(broker, "kiosk-7-agent") == ["p2, c1, k17, u'terminal-7'"]  # p2: MQTT 3.1.1
    assert connect_lines(broker, "test-store-t8") == ["p5, c1, k30"]  # MQTT 5, 30 s, no user


@pytest.fixture
def password_broker(tmp_path: Path) -> Any:
    """A mosquitto that admits user ``terminal`` with password ``pa55word`` only (no anonymous clients)."""
    need_mosquitto()
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    server = Mosquitto(tmp_path / "mosquitto")
    password_file = tmp_path / "mosquitto" / "passwords"
    made = subprocess.run([passwd, "-b", "-c", str(password_file), "terminal", "pa55word"], capture_output=True)
    if made.returncode != 0:
        require("mosquitto", f"mosquitto_passwd could not make a password file: {made.stderr.decode(errors='replace')}")
    password_file.chmod(0o644)
    conf = server.conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
    server.conf.write_text(conf + f"password_file {password_file}\n")
    server.start()
    yield server
    server.stop()


def test_password_comes_from_the_environment_or_a_credential(
    password_broker: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``password_env`` and ``password_credential`` supply the password the broker checks with ``username``."""
    monkeypatch.setenv("TEST_MQTT_PASSWORD", "pa55word")
    monkeypatch.setenv("TEST_MQTT_WRONG", "guess")
    (tmp_path / "mqtt-password").write_text("pa55word\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    def connects(**mqtt: Any) -> bool:
        settings = loaded_config(tmp_path, password_broker.port, mqtt={"username": "terminal", **mqtt}).config.mqtt
        conn = MqttConnection(settings, f"pw-{len(mqtt)}-{sorted(mqtt.values())}")
        conn.start()
        try:
            ok = conn.wait_connected(3)
            if not ok:
                assert (
                    "not authorised" in (conn.last_error or "").lower()
                    or "not authorized" in (conn.last_error or "").lower()
                ), conn.last_error
            return ok
        finally:
            conn.stop()

    assert connects(password_env="TEST_MQTT_PASSWORD")
    assert connects(password_credential="mqtt-password")
    assert not connects(password_env="TEST_MQTT_WRONG")
    assert not connects()


def test_topics_status_and_health_follow_the_settings(broker: Mosquitto, tmp_path: Path) -> None:
    """``topic_prefix``, ``store.id`` and ``terminal.id`` make every topic; the retained status names the store
    (``store.name``, ``store.timezone``) and the terminal's ``location``; health comes every
    ``health_interval_s``; the outbox and the counters live in ``storage.state_dir``."""
    config = write_config(
        tmp_path,
        broker.port,
        store={"id": "sh-01", "name": "Nanjing Road Flagship", "timezone": "Asia/Shanghai"},
        terminal={"id": "door-2", "location": "Main entrance, left pillar"},
        mqtt={"topic_prefix": "chain/eu", "health_interval_s": 1},
        storage={"state_dir": str(tmp_path / "state-here")},
    )
    listener = Listener(broker.port, ["chain/eu/sh-01/door-2/#", "store/sh-01/#"], "test-topics")
    try:
        with Daemon(load_config(config)) as daemon:
            server = threading.Thread(target=daemon.serve, daemon=True)
            server.start()
            health_at: list[float] = []

            def enough(msgs: list[tuple[str, dict[str, Any]]]) -> bool:
                healths = sum(t.endswith("/health") for t, _ in msgs)
                if healths > len(health_at):  # polled every 0.1 s: when each health message arrived
                    health_at.extend([time.monotonic()] * (healths - len(health_at)))
                return len(health_at) >= 4

            assert listener.wait(enough, timeout=20), [t for t, _ in listener.messages]
            daemon.stop_event.set()
            server.join(10)
        topics = {t for t, _ in listener.messages}
        assert topics == {"chain/eu/sh-01/door-2/status", "chain/eu/sh-01/door-2/health"}, topics
        status = next(p for t, p in listener.messages if t.endswith("/status"))
        validator("status").validate(status)
        assert (status["store_id"], status["terminal_id"]) == ("sh-01", "door-2")
        assert status["store_name"] == "Nanjing Road Flagship" and status["timezone"] == "Asia/Shanghai"
        assert status["location"] == "Main entrance, left pillar"
        gaps = [b - a for a, b in itertools.pairwise(health_at)]
        assert all(0.6 <= g <= 1.6 for g in gaps), gaps
        assert (tmp_path / "state-here" / "outbox.sqlite3").is_file()
    finally:
        listener.close()


def test_ack_broker_or_hub_and_the_hub_resend_timeout(broker: Mosquitto, tmp_path: Path) -> None:
    """``ack: broker`` empties the outbox on a PUBACK that says delivered, never on 0x10 "No matching subscribers";
    ``ack: hub`` keeps each event until the hub acknowledges its id, and sends again what the hub has not
    acknowledged within ``hub_ack_timeout_s``."""

    def emit(daemon: Daemon, n: int) -> list[str]:
        for i in range(n):
            daemon.agent.emit(BarcodeScanned(captured_at=time.time(), device="till", code=f"{i:013d}"))
        assert daemon.outbox.flush(10)
        return [r.event_id for r in daemon.outbox.fetch(0, 100)]

    by_broker = loaded_config(
        folder(tmp_path, "broker"),
        broker.port,
        store={"id": "ack-store", "name": "No hub"},  # no persistent hub session of another test queues for it
        terminal={"id": "t-broker"},
        mqtt={"ack": "broker"},
    )
    with Daemon(by_broker) as daemon:
        assert daemon.publisher.conn.wait_connected(10)
        emit(daemon, 5)
        assert wait_for(lambda: daemon.publisher.no_subscriber >= 5)
        assert daemon.outbox.rows == 5, "nobody subscribed: a 0x10 PUBACK is not delivery"
        assert daemon.health()["mqtt"]["delivery"] == "no subscriber"
        subscriber = Listener(broker.port, ["store/ack-store/t-broker/events/#"], "test-subscriber")
        try:
            assert daemon.outbox.wait_empty(15), "once someone subscribes, PUBACKs empty the outbox"
            assert subscriber.wait(lambda m: len({p["event_id"] for _, p in m}) == 5)
        finally:
            subscriber.close()

    base = "store/test-store/t-hub"
    hub = Listener(broker.port, [f"{base}/events/#"], "test-hub")
    by_hub = loaded_config(
        folder(tmp_path, "hub"), broker.port, terminal={"id": "t-hub"}, mqtt={"ack": "hub", "hub_ack_timeout_s": 1}
    )
    try:
        with Daemon(by_hub) as daemon:
            assert daemon.publisher.conn.wait_connected(10)
            ids = emit(daemon, 5)
            assert hub.wait(lambda m: len(m) >= 5, timeout=10)
            time.sleep(0.5)
            assert daemon.outbox.rows == 5, "PUBACKed, but the hub has not acknowledged them"
            assert hub.wait(lambda m: len(m) >= 10, timeout=5), "not sent again after hub_ack_timeout_s"
            assert sorted(p["event_id"] for _, p in hub.messages[:10]) == sorted(ids * 2)
            assert daemon.publisher.resends >= 5
            hub.publish(f"{base}/ack", json.dumps({"event_ids": ids}).encode())  # unsigned: ignored (Trust)
            time.sleep(0.5)
            assert daemon.outbox.rows == 5 and daemon.publisher.stats()["refused_acks"] == {"unsigned": 1}
            hub.publish(f"{base}/ack", signed_ack(TEST_HUB, f"{base}/ack", ids))
            assert daemon.outbox.wait_empty(10), "the hub's acknowledgement empties the outbox"
    finally:
        hub.close()
