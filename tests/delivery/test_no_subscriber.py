"""PUBACK 0x10 "No matching subscribers" is not delivery: against a real mosquitto, events nobody received stay in
the outbox, their topic is held and probed, other topics keep flowing, and they go out in order once someone
subscribes (in both ack modes)."""

from __future__ import annotations

import time
from pathlib import Path

from agent.delivery.broker import Mosquitto
from agent.events import DeviceStateChanged
from agent.pipelines.serial.events import BarcodeScanned
from agent.runtime.daemon import Daemon
from tests.delivery.conftest import Listener, loaded_config
from tests.delivery.test_chaos import hub


def wait_for(predicate: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(predicate())  # type: ignore[operator]


def test_a_topic_without_subscriber_waits_while_others_flow(own_broker: Mosquitto, tmp_path: Path) -> None:
    broker = own_broker  # a hub's persistent session left on a shared broker would make the broker queue for it
    loaded = loaded_config(tmp_path, broker.port, terminal={"id": "t-partial"}, mqtt={"ack": "broker"})
    base = "store/test-store/t-partial/events"
    barcodes = Listener(broker.port, [f"{base}/barcode.scanned"], "test-partial-barcodes")
    states: Listener | None = None
    try:
        with Daemon(loaded) as daemon:
            assert daemon.publisher.conn.wait_connected(10)
            for i in range(30):
                daemon.agent.emit(BarcodeScanned(captured_at=time.time(), device="till", code=f"{i:013d}"))
                daemon.agent.emit(
                    DeviceStateChanged(
                        captured_at=time.time(), device=f"cam{i}", kind="camera", state="online", previous="offline"
                    )
                )
            assert barcodes.wait(lambda m: len({p["event_id"] for _, p in m}) == 30), "barcodes are not blocked"
            assert wait_for(lambda: daemon.outbox.rows == 30), daemon.outbox.rows
            mqtt = daemon.health()["mqtt"]
            assert mqtt["delivery"] == "no subscriber" and mqtt["no_subscriber"] >= 1
            assert list(mqtt["held_topics"]) == [f"{base}/device.state"]
            probes = daemon.publisher.published
            time.sleep(3.0)
            assert daemon.publisher.published - probes <= 4, "a held topic is probed one event at a time"
            states = Listener(broker.port, [f"{base}/device.state"], "test-partial-states")
            assert states.wait(lambda m: len({p["event_id"] for _, p in m}) == 30, timeout=20)
            assert wait_for(lambda: daemon.outbox.rows == 0)
            assert daemon.health()["mqtt"]["delivery"] == "ok" and daemon.health()["mqtt"]["held_topics"] == {}
            devices = [p["device"] for _, p in states.messages]
            first = list(dict.fromkeys(devices))
            assert first == [f"cam{i}" for i in range(30)], "the held topic's events arrive in outbox order"
    finally:
        barcodes.close()
        if states is not None:
            states.close()


def test_hub_mode_sends_again_what_nobody_received(own_broker: Mosquitto, tmp_path: Path) -> None:
    """``ack: hub``: a 0x10 PUBACK does not start the hub-ack wait (nobody will ack); the event is probed until the
    hub subscribes, then acked by it and removed."""
    loaded = loaded_config(
        tmp_path, own_broker.port, terminal={"id": "t-late-hub"}, mqtt={"ack": "hub", "hub_ack_timeout_s": 600}
    )
    received: list[str] = []
    with Daemon(loaded) as daemon:
        assert daemon.publisher.conn.wait_connected(10)
        for i in range(20):
            daemon.agent.emit(BarcodeScanned(captured_at=time.time(), device="till", code=f"{i:013d}"))
        assert wait_for(lambda: daemon.publisher.no_subscriber >= 20)
        assert daemon.outbox.rows == 20 and daemon.publisher.delivery_state() == "no subscriber"
        monitor = hub(loaded.config, "hub-late", received)
        try:
            assert wait_for(lambda: daemon.outbox.rows == 0, timeout=30), daemon.publisher.stats()
        finally:
            monitor.stop()
        assert daemon.publisher.resends == 0, "not the 600 s hub-ack timeout: the probe found the hub"
    assert len(set(received)) == 20
