"""Delivery benchmark: durable events/s through the outbox to the broker, publish-to-receive latency, and the
ratio to raw paho QoS 1 publishing, against a mosquitto started on a free loopback port.

Raw, durable and raw-one-thread runs alternate (A/B/C/A/B/C...) so load from other processes falls on all of
them; the figures printed are medians over the rounds, and each ratio is the median of the per-round ratios.

    python bench/delivery_bench.py [--events 20000] [--reps 5] [--rate 1000] [--paced 5000]

A hub stands in throughout, for raw and durable runs alike: ``mosquitto_sub`` (C, in its own process, as the hub
is another machine) subscribed to the bench topics with QoS 1. Without a subscriber every PUBACK says 0x10 "No
matching subscribers", which the outbox does not take as delivery (issue 14), and the broker would skip the
forwarding work a real store does.

Throughput: from the first event handed over until the last PUBACK (raw) or until the outbox is empty again
(durable: accept -> committed with fsync -> published -> PUBACK -> row deleted). Both sides encode each event's
JSON in the timed loop. Latency (paced runs): the send time travels in the barcode ``code``; the subscriber
takes receive minus send, so durable latency includes the group-commit window.
"""

from __future__ import annotations

import argparse
import itertools
import json
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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
from agent.events import Event, EventStamper
from agent.pipelines.serial.events import BarcodeScanned

WINDOW = 100


class Receiver:
    """Counts arrivals and records publish-to-receive latency from the send time in ``code``."""

    def __init__(self, port: int, name: str) -> None:
        self.seen: set[str] = set()
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
            self.seen.add(payload["event_id"])
            self.latencies.append(now - float(payload["code"]))

    def wait(self, n: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        self.monitor.stop()


def stamper() -> EventStamper:
    counter = itertools.count(1)
    return EventStamper("bench", "t1", lambda: next(counter))


def prebuilt(n: int) -> list[Event]:
    stamp = stamper().stamp
    return [stamp(BarcodeScanned(captured_at=time.time(), device="scanner", code=f"{i:013d}")) for i in range(n)]


def paced(n: int, rate: float, send: Callable[[Event], None]) -> None:
    """Send ``n`` events at ``rate``; each carries its send time in ``code``."""
    stamp = stamper().stamp
    start = time.time()
    for i in range(n):
        now = time.time()
        send(stamp(BarcodeScanned(captured_at=now, device="scanner", code=f"{now:.6f}")))
        delay = start + (i + 1) / rate - time.time()
        if delay > 0:
            time.sleep(delay)


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
        window=WINDOW,
    )
    publisher.start()
    assert publisher.conn.wait_connected(10)
    try:
        if receiver is not None and rate:
            paced(n, rate, outbox.accept)
            receiver.wait(n)
            return n / (n / rate), receiver.latencies
        events = prebuilt(n)
        start = time.perf_counter()
        for event in events:
            outbox.accept(event)
        while outbox.committed < n or outbox.rows:
            time.sleep(0.005)
        return n / (time.perf_counter() - start), []
    finally:
        publisher.stop()
        outbox.close()


def raw(port: int, n: int, rate: float | None, tag: str, nodelay: bool = True) -> tuple[float, list[float]]:
    """paho as its documentation shows it: ``loop_start`` thread, ``publish`` from the caller, QoS 1."""
    receiver = Receiver(port, f"bench-recv-{tag}") if rate else None
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-raw-{tag}", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(WINDOW)
    done = threading.Event()
    acked = itertools.count(1)
    connected = threading.Event()

    def on_connect(c: paho.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        sock = c.socket()
        if nodelay and isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connected.set()

    client.on_connect = on_connect
    client.on_publish = lambda c, u, mid, rc, p: next(acked) >= n and done.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(10)

    def send(event: Event) -> None:
        payload = json.dumps(event.to_payload(), ensure_ascii=False, separators=(",", ":")).encode()
        client.publish(f"store/bench/t1/events/{event.type}", payload, qos=1)

    try:
        if receiver is not None and rate:
            paced(n, rate, send)
            receiver.wait(n)
            return rate, receiver.latencies
        events = prebuilt(n)
        start = time.perf_counter()
        for event in events:
            send(event)
        done.wait(300)
        return n / (time.perf_counter() - start), []
    finally:
        client.loop_stop()
        client.disconnect()


def raw_one_thread(port: int, n: int) -> float:
    """paho at its leanest: one thread publishes and drives the socket itself (``loop_read``/``loop_write``),
    so no wake-up byte or thread switch per message; what paho can do at best in Python."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw1", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(WINDOW)
    acked = itertools.count(1)
    done = threading.Event()
    client.on_publish = lambda c, u, mid, rc, p: next(acked) >= n and done.set()
    client.connect("127.0.0.1", port)
    sock = client.socket()
    assert isinstance(sock, socket.socket)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def turn(timeout: float) -> None:
        readable, _, _ = select.select([sock], [sock] if client.want_write() else [], [], timeout)
        if readable:
            client.loop_read()
        if client.want_write():
            client.loop_write()
        client.loop_misc()

    while not client.is_connected():
        turn(0.1)
    events = prebuilt(n)
    start = time.perf_counter()
    for i, event in enumerate(events):
        payload = json.dumps(event.to_payload(), ensure_ascii=False, separators=(",", ":")).encode()
        client.publish(f"store/bench/t1/events/{event.type}", payload, qos=1)  # written at once while room
        if i % 20 == 19:
            turn(0.0)
    while not done.is_set():
        turn(0.05)
    rate = n / (time.perf_counter() - start)
    client.disconnect()
    return rate


def hub_subscriber(port: int) -> subprocess.Popen[bytes]:
    """``mosquitto_sub`` on the bench topics (QoS 1), discarding what it receives; subscribed when this returns."""
    binary = shutil.which("mosquitto_sub")
    if binary is None:
        sys.exit("mosquitto_sub is not installed (apt install mosquitto-clients)")
    hub = subprocess.Popen(
        [
            binary,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-t",
            "store/bench/#",
            "-i",
            "bench-hub",
        ],
        stdout=subprocess.DEVNULL,
    )
    probe = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe", protocol=paho.MQTTv5)
    codes: list[int] = []
    probe.on_publish = lambda c, u, mid, rc, p: codes.append(int(rc.value))
    probe.connect("127.0.0.1", port)
    probe.loop_start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 0 not in codes:  # until a PUBACK says someone is subscribed
        probe.publish("store/bench/probe", b"{}", qos=1).wait_for_publish(2)
        time.sleep(0.1)
    probe.loop_stop()
    probe.disconnect()
    if 0 not in codes:
        sys.exit("mosquitto_sub did not subscribe within 10 s")
    return hub


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="events per flood run")
    parser.add_argument("--reps", type=int, default=5, help="rounds of raw/durable/raw-one-thread, interleaved")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced rate for the latency runs")
    parser.add_argument("--paced", type=int, default=5000, help="events per paced run")
    parser.add_argument("--no-nodelay", action="store_true", help="raw paho without TCP_NODELAY (paho's default)")
    args = parser.parse_args()
    raw_rates: list[float] = []
    raw1_rates: list[float] = []
    dur_rates: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto").start()
        hub = hub_subscriber(broker.port)
        try:
            for rep in range(args.reps):
                raw_rates.append(raw(broker.port, args.events, None, f"raw-{rep}", nodelay=not args.no_nodelay)[0])
                dur_rates.append(durable(broker.port, Path(tmp), args.events, None, f"flood-{rep}")[0])
                raw1_rates.append(raw_one_thread(broker.port, args.events))
                print(
                    f"round {rep + 1}: raw {raw_rates[-1]:7.0f}/s  durable {dur_rates[-1]:7.0f}/s  "
                    f"raw one-thread {raw1_rates[-1]:7.0f}/s",
                    flush=True,
                )
            _, raw_lat = raw(broker.port, args.paced, args.rate, "raw-paced", nodelay=not args.no_nodelay)
            _, dur_lat = durable(broker.port, Path(tmp), args.paced, args.rate, "paced")
        finally:
            hub.terminate()
            hub.wait(10)
            broker.stop()
    ratios = [d / r for d, r in zip(dur_rates, raw_rates, strict=True)]
    ratios1 = [d / r for d, r in zip(dur_rates, raw1_rates, strict=True)]
    print(f"machine: 2-core x86-64 dev VM; mosquitto on loopback; MQTT 5, QoS 1, {WINDOW} in flight")
    print(
        f"flood: {args.events} events x {args.reps} interleaved rounds; paced: {args.paced} events at {args.rate:.0f}/s"
    )
    for name, rates, lat in (("raw paho QoS 1", raw_rates, raw_lat), ("durable via outbox", dur_rates, dur_lat)):
        print(
            f"{name:<20}: median {statistics.median(rates):7.0f} events/s (min {min(rates):.0f}, max {max(rates):.0f})"
            f"  paced latency p50 {pct(lat, 50):.2f} ms  p99 {pct(lat, 99):.2f} ms"
        )
    print(
        f"{'raw paho one thread':<20}: median {statistics.median(raw1_rates):7.0f} events/s "
        f"(min {min(raw1_rates):.0f}, max {max(raw1_rates):.0f})"
    )
    for name, values in (("raw (loop_start)", ratios), ("raw one thread", ratios1)):
        each = ", ".join(f"{r:.2f}" for r in values)
        print(f"ratio durable / {name:<16}: median {statistics.median(values):.2f} (per round: {each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
