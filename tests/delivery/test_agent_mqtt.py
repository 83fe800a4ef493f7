"""A real ``store-agent run`` against a real mosquitto: topics, schema-valid payloads, birth and last will."""

from __future__ import annotations

import signal
from pathlib import Path

from agent.delivery.broker import Mosquitto
from agent.delivery.topics import parse_topic
from tests.delivery.conftest import PATTERN_CAMERA, Listener, start_agent, validator, write_config


def test_events_status_health_and_last_will(broker: Mosquitto, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        broker.port,
        cameras=[{**PATTERN_CAMERA, "realtime": False}],
        pipelines={"motion": {"enabled": True}},
    )
    listener = Listener(broker.port, ["store/test-store/t1/#"], "test-events-listener")
    listener.publish("store/test-store/t1/status", b"", retain=True)  # clear what an earlier test left retained
    listener.wait(lambda m: False, timeout=0.5)
    listener.messages.clear()
    agent = start_agent(config)
    try:

        def enough(msgs: list[tuple[str, dict[str, object]]]) -> bool:
            kinds = {parse_topic("store", t).kind for t, _ in msgs}  # type: ignore[union-attr]
            motion = [p for t, p in msgs if t.endswith("/events/scene.motion")]
            return {"status", "health", "events"} <= kinds and len(motion) >= 2

        assert listener.wait(enough, timeout=30), [t for t, _ in listener.messages]
        for topic, payload in listener.messages:
            parsed = parse_topic("store", topic)
            assert parsed is not None and parsed.store_id == "test-store" and parsed.terminal_id == "t1"
            if parsed.kind == "events":
                assert payload["type"] == parsed.name
                validator(parsed.name).validate(payload)  # type: ignore[arg-type]
            else:
                validator(parsed.kind).validate(payload)
        online = [p for t, p in listener.messages if t.endswith("/status")]
        assert online[0]["state"] == "online" and online[0]["boot_count"] >= 1
        assert online[0]["pipelines"] == ["motion"] and len(online[0]["config_sha256"]) == 64
        health = [p for t, p in listener.messages if t.endswith("/health")][-1]
        assert health["devices"]["cam"]["kind"] == "camera" and health["outbox"]["depth"] >= 0
        assert health["system"]["rss_bytes"] > 0

        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        assert listener.wait(
            lambda m: any(t.endswith("/status") and p["state"] == "offline" for t, p in m), timeout=90
        ), "no last will after SIGKILL"
        will = [p for t, p in listener.messages if t.endswith("/status")][-1]
        assert will["reason"] == "connection lost"
    finally:
        if agent.poll() is None:
            agent.kill()
        listener.close()

    retained = Listener(broker.port, ["store/test-store/t1/status"], "test-retained")
    try:
        assert retained.wait(lambda m: bool(m), timeout=10)
        assert retained.messages[0][1]["state"] == "offline", "the retained status is the last will"
    finally:
        retained.close()
