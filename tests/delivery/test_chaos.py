"""Chaos: the broker dies during 5,000 events; the agent is SIGKILLed again and again. Nothing accepted is lost."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.delivery.broker import Mosquitto
from agent.delivery.monitor import Monitor
from agent.events import Event
from agent.pipelines.serial.events import BarcodeScanned
from agent.runtime.daemon import Daemon
from tests.delivery.conftest import REPO, TEST_HUB, loaded_config, registry_for, write_config
from tests.delivery.faults import session_saved, wait_until


class Recorder:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def accept(self, event: Event) -> None:
        self.ids.append(event.event_id)

    def close(self) -> None:
        return None


def hub(config: Any, client_id: str, received: list[str]) -> Monitor:
    def on_event(terminal: str, payload: dict[str, Any], duplicate: bool) -> None:
        received.append(payload["event_id"])

    monitor = Monitor(
        config.mqtt,
        config.store.id,
        client_id=client_id,
        ack=True,
        on_event=on_event,
        hub_key=TEST_HUB,
        registry=registry_for(config),
    ).start()
    assert monitor.subscribed.wait(10), monitor.conn.last_error
    return monitor


@pytest.mark.slow
def test_broker_killed_and_restarted_during_5000_events(own_broker: Mosquitto, tmp_path: Path) -> None:
    loaded = loaded_config(tmp_path, own_broker.port, mqtt={"ack": "hub", "hub_ack_timeout_s": 5})
    received: list[str] = []
    monitor = hub(loaded.config, "hub-5000", received)
    # mosquitto autosaves every second: the subscriber's session must be on disk before the crash
    assert wait_until(lambda: session_saved(own_broker.workdir, "hub-5000", monitor.topics.event("+")), 10)
    recorder = Recorder()
    total = 5000
    with Daemon(loaded, extra_sink=recorder) as daemon:

        def produce() -> None:
            for i in range(total):
                daemon.agent.emit(BarcodeScanned(captured_at=time.time(), device="scanner", code=str(i)))
                if i % 50 == 49:
                    time.sleep(0.03)

        producer = threading.Thread(target=produce)
        producer.start()
        assert wait_until(lambda: len(received) >= 200, 30), "events flow before the crash"
        sent_before_crash = len(received)
        own_broker.kill()
        time.sleep(1.0)
        own_broker.start()
        producer.join()
        assert monitor.wait_for(lambda: len(set(received)) >= total and daemon.outbox.rows == 0, timeout=120), (
            f"hub has {len(set(received))} of {total}, outbox holds {daemon.outbox.rows}"
        )
        publisher = daemon.publisher.stats()
    monitor.stop()
    assert 0 < sent_before_crash < total, "the crash happened while events were flowing"
    assert set(received) == set(recorder.ids) and len(recorder.ids) == total
    duplicates = len(received) - len(set(received))
    assert monitor.duplicates == duplicates
    print(f"\n5,000 events, broker SIGKILLed at {sent_before_crash}: none lost, {duplicates} duplicates, {publisher}")


@pytest.mark.slow
def test_agent_sigkilled_repeatedly_loses_nothing_accepted(broker: Mosquitto, tmp_path: Path) -> None:
    config_path = write_config(tmp_path, broker.port, terminal={"id": "chaos"})
    from agent.config.loader import load_config

    config = load_config(config_path).config
    accepted_file = tmp_path / "accepted.txt"
    received: list[str] = []
    monitor = Monitor(
        config.mqtt,
        config.store.id,
        "chaos",
        client_id="hub-chaos",
        ack=False,
        on_event=lambda t, p, d: received.append(p["event_id"]),
    ).start()
    assert monitor.subscribed.wait(10)
    rng = random.Random(3)
    command = [
        sys.executable,
        "-m",
        "tests.delivery.producer",
        "--config",
        str(config_path),
        "--accepted",
        str(accepted_file),
    ]
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen([*command, "--rate", "800"], cwd=REPO, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        proc.stderr.readline()  # "started": the daemon is up
        time.sleep(rng.uniform(0.5, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stderr.close()
        kills += 1
    accepted = accepted_file.read_text().split()
    assert len(accepted) > 500
    final = subprocess.Popen([*command, "--count", "0"], cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        assert monitor.wait_for(lambda: set(accepted) <= set(received), timeout=60), (
            f"{len(set(accepted) - set(received))} accepted events never arrived"
        )
        assert final.wait(30) == 0
    finally:
        if final.poll() is None:
            final.kill()
        monitor.stop()
    duplicates = len(received) - len(set(received))
    unaccepted = len(set(received) - set(accepted))
    print(
        f"\n{kills} SIGKILLs: {len(accepted)} accepted events all delivered; {duplicates} duplicates; "
        f"{unaccepted} delivered events were committed but not yet reported as accepted when killed"
    )
