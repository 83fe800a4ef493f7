"""`store-agent hub serve --processes 2`: two consumer processes in one shared group on a real mosquitto.

Simulated terminals (bench.fleet_load.SimTerminal: real MQTT 5 clients with the terminal's MAC, waiting for the
hub's signed acks and sending again what is not acknowledged) publish into the broker; the test reads the hub's
event store. Each event is stored once, both consumers take a share, nothing forged is stored or acknowledged,
and killing a consumer mid-run loses nothing.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from agent.delivery.broker import Mosquitto
from agent.events import compact_json, new_event_id
from agent.hub.store import EventStore
from bench.fleet_load import (
    SimTerminal,
    start_serve,
    stop_serve,
    wait_subscribed,
    worker_pids,
    write_hub_files,
    write_registry,
)
from tests.delivery.conftest import TEST_HUB, need_mosquitto


def _drain(sims: list[SimTerminal], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sum(s.unacked() for s in sims):
            return True
        for sim in sims:
            sim.resend_due()
        time.sleep(0.2)
    return False


def test_two_consumers_store_each_event_once_and_survive_a_kill(tmp_path: Path) -> None:
    need_mosquitto()
    broker = Mosquitto(tmp_path / "broker").start()
    config, key = write_hub_files(tmp_path / "hub", broker.port, TEST_HUB)
    sims = [SimTerminal(broker.port, store, t, TEST_HUB.public, resend_s=3.0) for store in ("s1", "s2") for t in "abc"]
    stranger = SimTerminal(broker.port, "s1", "x", TEST_HUB.public)  # not registered at the hub
    write_registry(tmp_path / "hub" / "terminals.yaml", sims)
    for sim in (*sims, stranger):
        assert sim.start().wait_connected(10)
    serve = start_serve(config, key, tmp_path / "hub" / "state", 2, "g")
    produced: list[str] = []
    try:
        wait_subscribed(serve, 2)
        workers = worker_pids(serve.pid)
        assert len(workers) == 2
        for _ in range(30):
            produced += [sim.event() for sim in sims]
            time.sleep(0.01)
        assert _drain(sims, 30), "every event acknowledged"
        forged_id = new_event_id()
        forged = compact_json({"event_id": forged_id, "type": "zone.occupancy"}).encode()
        sims[0].client.publish("store/s1/a/events/zone.occupancy", forged, qos=1)  # no MAC
        stranger.event()

        # A consumer killed while events flow: the terminals send again what it did not acknowledge.
        for i in range(30):
            produced += [sim.event() for sim in sims]
            if i == 10:
                os.kill(workers[0], signal.SIGKILL)
            time.sleep(0.01)
        assert _drain(sims, 60), f"unacknowledged after the kill: {sum(s.unacked() for s in sims)}"
        assert stranger.unacked() == 1, "an unregistered terminal's event is neither stored nor acknowledged"
    finally:
        stop_serve(serve)
        for sim in (*sims, stranger):
            sim.stop()
        broker.stop()
    assert serve.returncode == 0
    store = EventStore(tmp_path / "hub" / "state" / "events.sqlite3")
    try:
        assert store.event_ids() == set(produced), "every event stored, nothing else"
        assert store.count() == len(produced) == 360, "each once"
        shares = store.by_consumer()
        assert set(shares) == {"store-agent-g-0", "store-agent-g-1"} and min(shares.values()) > 0, shares
        print(f"\nstored by consumer: {json.dumps(shares)}; resends: {sum(s.resends for s in sims)}")
    finally:
        store.close()
    assert all(not s.refused_acks for s in sims), "every ack was signed by the hub"
