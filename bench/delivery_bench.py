"""Delivery benchmark: durable events/s through the outbox to the broker, publish-to-receive latency, and the
ratio to raw paho QoS 1 publishing, all in one run against a mosquitto started on a free loopback port.

    python bench/delivery_bench.py [--events 20000] [--rate 1000]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config.schema import MqttSection, OutboxSettings
from agent.delivery.broker import Mosquitto
from agent.delivery.monitor import Monitor
from agent.delivery.outbox import Outbox
from agent.delivery.publisher import Publisher
from agent.delivery.topics import Topics
from agent.events import BarcodeScanned, EventStamper


class Receiver:
    """Counts arrivals and records publish-to-receive latency from the payload's emitted_at."""

    def __init__(self, port: int, name: str) -> None:
        self.times: dict[str, float] = {}
        self.latencies: list[float] = []
        self.monitor = Monitor(
            MqttSection(host="127.0.0.1", port=port, protocol="5"),
            "bench",
            client_id=name,
            ack=False,
            on_event=self._on_event,
        ).start()
        assert self.monitor.subscribed.wait(10)

    def _on_event(self, terminal: str, payload: dict[str, Any], duplicate: bool) -> None:
        now = time.time()
        if not duplicate:
            self.times[payload["event_id"]] = now
            self.latencies.append(now - payload["sent"])

    def wait(self, n: int, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while len(self.times) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return max(self.times.values())


def stamped(n: int, sent_at: dict[str, float] | None = None) -> Any:
    counter = itertools.count(1)
    stamper = EventStamper("bench", "t1", lambda: next(counter))
    for i in range(n):
        yield stamper.stamp(BarcodeScanned(captured_at=time.time(), device="scanner", code=f"{i:013d}"))


class TimedOutbox(Outbox):
    """Puts the accept time into the payload (as 'sent') so latency is accept -> subscriber receive."""


def durable(port: int, workdir: Path, n: int, rate: float | None, tag: str) -> tuple[float, list[float]]:
    receiver = Receiver(port, f"bench-recv-{tag}") if rate else None
    topics = Topics("store", "bench", "t1")
    settings = MqttSection(host="127.0.0.1", port=port, protocol="5")
    outbox = Outbox(workdir / f"{tag}.sqlite3", OutboxSettings(commit_window_ms=25), topics)
    publisher = Publisher(
        settings,
        topics,
        outbox,
        client_id=f"bench-pub-{tag}",
        birth=lambda: {"state": "online"},
        will={"state": "offline"},
    )
    publisher.start()
    assert publisher.conn.wait_connected(10)
    events = list(stamped(n))
    start = time.time()
    for i, event in enumerate(events):
        # emitted_at doubles as the send time in the payload for latency ('sent')
        object.__setattr__(event, "body", BarcodeScanned(captured_at=time.time(), device="scanner", code=str(i)))
        sent = time.time()
        patched = _with_sent(event, sent)
        outbox.accept(patched)
        if rate:
            delay = start + (i + 1) / rate - time.time()
            if delay > 0:
                time.sleep(delay)
    if receiver is None:
        outbox.flush()
        while outbox.rows or outbox.committed < n:
            time.sleep(0.002)
        last = time.time()
    else:
        last = receiver.wait(n)
    publisher.stop()
    outbox.close()
    if receiver is None:
        return n / (last - start), []
    receiver.monitor.stop()
    return n / (last - start), receiver.latencies


def _with_sent(event: Any, sent: float) -> Any:
    original = event.to_payload

    class Sent(type(event)):  # type: ignore[misc]
        def to_payload(self) -> dict[str, Any]:
            return {**original(), "sent": sent}

    return Sent(event.event_id, event.seq, event.store_id, event.terminal_id, event.emitted_at, event.body)


def raw(port: int, n: int, rate: float | None, tag: str) -> tuple[float, list[float]]:
    import json

    receiver = Receiver(port, f"bench-recv-{tag}") if rate else None
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-raw-{tag}", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(100)
    done = threading.Event()
    acked = itertools.count(1)
    client.on_publish = lambda c, u, mid, rc, p: next(acked) >= n and done.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    events = list(stamped(n))
    start = time.time()
    for i, event in enumerate(events):
        payload = {**event.to_payload(), "sent": time.time()}
        client.publish(f"store/bench/t1/events/{event.type}", json.dumps(payload, separators=(",", ":")), qos=1)
        if rate:
            delay = start + (i + 1) / rate - time.time()
            if delay > 0:
                time.sleep(delay)
    if receiver is None:
        done.wait(300)
        last = time.time()
    else:
        last = receiver.wait(n)
    client.loop_stop()
    client.disconnect()
    if receiver is None:
        return n / (last - start), []
    receiver.monitor.stop()
    return n / (last - start), receiver.latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=1000.0, help="paced rate for the latency runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto").start()
        try:
            raw_rate, _ = raw(broker.port, args.events, None, "raw-flood")
            dur_rate, _ = durable(broker.port, Path(tmp), args.events, None, "flood")
            lat_n = int(args.rate * 5)
            _, raw_lat = raw(broker.port, lat_n, args.rate, "raw-paced")
            _, dur_lat = durable(broker.port, Path(tmp), lat_n, args.rate, "paced")
        finally:
            broker.stop()
    print(f"events: {args.events} (flood), {lat_n} paced at {args.rate:.0f}/s; mosquitto on loopback")
    print("throughput: publish until every PUBACK (durable: accept -> committed -> published -> deleted)")
    for name, rate, lat in (("raw paho QoS 1", raw_rate, raw_lat), ("durable via outbox", dur_rate, dur_lat)):
        print(f"{name:<20}: {rate:8.0f} events/s  p50 {pct(lat, 50):.2f} ms  p99 {pct(lat, 99):.2f} ms")
    print(f"ratio durable / raw : {dur_rate / raw_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
