"""Hub throughput with many terminals: simulated terminals into the chain broker, 1, 2 and 4 hub consumers.

Usage::

    python bench/fleet_load.py [--terminals 300] [--rate 2] [--seconds 20] [--consumers 1 2 4]

Each simulated terminal is a real MQTT 5 client speaking the terminal protocol with ``mqtt.ack: hub``: it
publishes events (QoS 1, the terminal's MAC over topic and payload, under a key derived from its own X25519 key and
the hub's) on ``store/<store>/<terminal>/events/<type>``, keeps each until the hub's *signed* ack for it arrives on
its ``ack`` topic, and sends again what is not acknowledged within ``--resend`` seconds. The hub side is the real
``store-agent hub serve --processes N`` (a shared subscription group, MAC checks, the SQLite event store, signed
acks after commit) on a real mosquitto. Terminals connect to the chain broker directly (a store broker's bridge
would carry the same messages on one connection per store). Printed per consumer count: events stored per second
(end to end: accepted by the terminal to committed at the hub), ack latency p50/p99 (publish to signed ack
received), hub CPU per event (user + system time of every consumer process over the events stored), and checks
that every event was stored exactly once.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.events import compact_json, iso_time, new_event_id
from agent.trust.keys import HubPrivateKey, HubPublicKey, TerminalKey
from agent.trust.messages import AckCheck, TerminalSealer, check_hub_signature

REPO = Path(__file__).resolve().parents[1]
EVENT_TYPE = "zone.occupancy"


@dataclass
class Sent:
    first_at: float
    last_at: float
    topic: str
    payload: bytes


class SimTerminal:
    """A terminal in ``ack: hub`` mode, reduced to its protocol: MACed events out, signed acks in, resends."""

    def __init__(
        self,
        port: int,
        store_id: str,
        terminal_id: str,
        hub: HubPublicKey,
        *,
        resend_s: float = 10.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.store_id = store_id
        self.terminal_id = terminal_id
        self.key = TerminalKey(X25519PrivateKey.generate())
        self.sealer = TerminalSealer(self.key, hub, store_id, terminal_id)
        self.hub_keys = {hub.kid: hub}
        self.base = f"store/{store_id}/{terminal_id}"
        self.resend_s = resend_s
        self.seq = 0
        self.pending: dict[str, Sent] = {}
        self.latencies: list[float] = []
        self.acked_at: list[float] = []
        self.acked: set[str] = set()
        self.refused_acks = 0
        self.resends = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{store_id}-{terminal_id}", protocol=paho.MQTTv5
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self._connected.clear()
        self.host, self.port = host, port

    @property
    def key_line(self) -> str:
        return self.key.line()

    def start(self) -> SimTerminal:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        self.client.connect_async(self.host, self.port, 30, clean_start=False, properties=properties)
        self.client.loop_start()
        return self

    def wait_connected(self, timeout: float = 30.0) -> bool:
        return self._connected.wait(timeout)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe(f"{self.base}/ack", qos=1)
            self._connected.set()
            with self._lock:  # after every reconnect everything unacknowledged goes again, as the agent does
                again = list(self.pending.values())
            for sent in again:
                client.publish(sent.topic, sent.payload, qos=1)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        check, body = check_hub_signature(self.hub_keys, message.topic, bytes(message.payload))
        if check is not AckCheck.OK:
            self.refused_acks += 1
            return
        import json

        ids = json.loads(body).get("event_ids", [])
        now = time.monotonic()
        with self._lock:
            for event_id in ids:
                sent = self.pending.pop(event_id, None)
                if sent is not None:
                    self.latencies.append(now - sent.first_at)
                    self.acked_at.append(now)
                    self.acked.add(event_id)

    def event(self, fields: dict[str, Any] | None = None) -> str:
        """Publish one new event (accepted: it stays pending until the hub's signed ack); its id."""
        self.seq += 1
        now = time.time()
        event_id = new_event_id()
        payload = {
            "schema_version": 1,
            "type": EVENT_TYPE,
            "event_id": event_id,
            "store_id": self.store_id,
            "terminal_id": self.terminal_id,
            "seq": self.seq,
            "captured_at": iso_time(now),
            "emitted_at": iso_time(now),
            "camera": "door",
            "zone": "entrance",
            "count": random.randint(0, 9),
            "reason": "change",
            **(fields or {}),
        }
        topic = f"{self.base}/events/{EVENT_TYPE}"
        body = self.sealer.seal(topic, compact_json(payload).encode())
        started = time.monotonic()
        with self._lock:
            self.pending[event_id] = Sent(started, started, topic, body)
        self.client.publish(topic, body, qos=1)
        return event_id

    def resend_due(self) -> int:
        """Send again what the hub has not acknowledged within ``resend_s`` (the agent's hub_ack_timeout_s)."""
        now = time.monotonic()
        with self._lock:
            due = [s for s in self.pending.values() if now - s.last_at > self.resend_s]
            for sent in due:
                sent.last_at = now
        for sent in due:
            self.client.publish(sent.topic, sent.payload, qos=1)
        self.resends += len(due)
        return len(due)

    def unacked(self) -> int:
        with self._lock:
            return len(self.pending)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_registry(path: Path, terminals: Sequence[SimTerminal]) -> None:
    data: dict[str, dict[str, str]] = {}
    for t in terminals:
        data.setdefault(t.store_id, {})[t.terminal_id] = t.key_line
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def write_hub_files(directory: Path, port: int, hub: HubPrivateKey) -> tuple[Path, Path]:
    """``chain.yaml`` (the broker) and ``hub.key`` for `hub serve`."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "hub.key"
    key.write_text(hub.text(), encoding="ascii")
    config = directory / "chain.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "store": {"id": "chain", "name": "The chain's hub"},
                "terminal": {"id": "hub"},
                "mqtt": {"host": "127.0.0.1", "port": port},
                "storage": {"state_dir": str(directory / "state")},
            }
        ),
        encoding="utf-8",
    )
    return config, key


def start_serve(config: Path, key: Path, state_dir: Path, processes: int, group: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "agent", "hub", "serve", "--config", str(config), "--key", str(key)),
            *("--state-dir", str(state_dir), "--processes", str(processes), "--group", group),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_subscribed(proc: subprocess.Popen[bytes], processes: int, timeout: float = 60.0) -> list[str]:
    """Read the supervisor's stderr until every consumer said it subscribed; the lines read."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while sum("subscribed" in line for line in lines) < processes:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("hub serve did not subscribe: " + "".join(lines))
        raw = proc.stderr.readline()
        if raw:
            lines.append(raw.decode(errors="replace"))
    threading.Thread(target=lambda: proc.stderr and proc.stderr.read(), daemon=True).start()  # keep the pipe empty
    return lines


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def stored(db: Path) -> tuple[int, int]:
    """(rows, distinct event ids) in the hub's event store."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        rows = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
        return int(rows[0]), int(rows[1])
    finally:
        conn.close()


def worker_pids(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (hub serve's consumers), from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                pids.append(int(entry.name))
    return sorted(pids)


def cpu_s(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_once(port: int, root: Path, terminals: int, rate: float, seconds: float, consumers: int) -> dict[str, Any]:
    hub = HubPrivateKey.generate()
    work = root / f"c{consumers}"
    config, key = write_hub_files(work, port, hub)
    sims = []
    for i in range(terminals):  # in waves of 50, as a chain's terminals do not all start in the same second
        sims.append(SimTerminal(port, f"s{i // 10:03d}", f"t{i % 10}", hub.public, resend_s=10.0).start())
        if i % 50 == 49:
            for sim in sims[-50:]:
                sim.wait_connected(60)
    write_registry(work / "terminals.yaml", sims)
    for sim in sims:
        if not sim.wait_connected(60):
            raise RuntimeError(f"{sim.base} did not connect")
    serve = start_serve(config, key, work / "state", consumers, f"bench{consumers}")
    wait_subscribed(serve, consumers)
    pids = worker_pids(serve.pid)
    cpu_before = cpu_s(pids)  # after start-up: the imports are not the events' cost
    produced = 0
    started = time.monotonic()
    interval = 1.0 / rate
    next_tick = started
    while time.monotonic() - started < seconds:  # every terminal sends `rate` events per second, spread out
        for sim in sims:
            sim.event()
        produced += len(sims)
        next_tick += interval
        time.sleep(max(0.0, next_tick - time.monotonic()))
    sent_for = time.monotonic() - started
    deadline = time.monotonic() + 120
    while sum(s.unacked() for s in sims) and time.monotonic() < deadline:
        for sim in sims:
            sim.resend_due()
        time.sleep(0.2)
    drained = time.monotonic() - started
    cpu = cpu_s(pids) - cpu_before
    stop_serve(serve)
    rows, distinct = stored(work / "state" / "events.sqlite3")
    latencies = [v for s in sims for v in s.latencies]
    for sim in sims:
        sim.stop()
    return {
        "consumers": consumers,
        "terminals": terminals,
        "offered_per_s": terminals * rate,
        "produced": produced,
        "stored": distinct,
        "rows": rows,
        "unacked": sum(s.unacked() for s in sims),
        "refused_acks": sum(s.refused_acks for s in sims),
        "resends": sum(s.resends for s in sims),
        "events_per_s": distinct / drained,
        "sent_for_s": sent_for,
        "drained_s": drained,
        "ack_p50_ms": percentile(latencies, 0.5) * 1000,
        "ack_p99_ms": percentile(latencies, 0.99) * 1000,
        "cpu_us_per_event": cpu / max(1, distinct) * 1e6,
    }


def run_backlog(port: int, root: Path, terminals: int, backlog: int, consumers: int) -> dict[str, Any]:
    """Hub capacity without the simulator in the way: ``backlog`` events wait at the broker for the consumers'
    persistent sessions (their shared subscription made once, then stopped); then the consumers start and the
    time until every event is stored and acknowledged gives the drain rate."""
    hub = HubPrivateKey.generate()
    work = root / f"backlog{consumers}"
    config, key = write_hub_files(work, port, hub)
    sims = [SimTerminal(port, f"s{i // 10:03d}", f"t{i % 10}", hub.public, resend_s=600.0) for i in range(terminals)]
    for sim in sims:
        sim.start().wait_connected(60)
    write_registry(work / "terminals.yaml", sims)
    group = f"backlog{consumers}"
    serve = start_serve(config, key, work / "state", consumers, group)
    wait_subscribed(serve, consumers)
    stop_serve(serve)
    for n in range(backlog):
        sims[n % terminals].event()
        if n % 1000 == 999:
            time.sleep(0.05)  # let paho's threads keep up
    time.sleep(2.0)
    for sim in sims:  # measure the drain only: first ack to last
        sim.acked_at.clear()
    started = time.monotonic()
    serve = start_serve(config, key, work / "state", consumers, group)
    wait_subscribed(serve, consumers)
    pids = worker_pids(serve.pid)
    cpu_before = cpu_s(pids)
    subscribed = time.monotonic() - started
    deadline = time.monotonic() + 300
    while sum(s.unacked() for s in sims) and time.monotonic() < deadline:
        time.sleep(0.1)
    acked_at = [t for s in sims for t in s.acked_at]
    took = max(acked_at) - min(acked_at) if len(acked_at) > 1 else time.monotonic() - started - subscribed
    cpu = cpu_s(pids) - cpu_before
    stop_serve(serve)
    rows, distinct = stored(work / "state" / "events.sqlite3")
    latencies = [v for s in sims for v in s.latencies]
    for sim in sims:
        sim.stop()
    return {
        "consumers": consumers,
        "stored": distinct,
        "rows": rows,
        "unacked": sum(s.unacked() for s in sims),
        "events_per_s": distinct / took,
        "took_s": took,
        "cpu_us_per_event": cpu / max(1, distinct) * 1e6,
        "latencies": len(latencies),
    }


def main() -> None:
    from agent.delivery.broker import Mosquitto

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, default=300)
    parser.add_argument("--rate", type=float, default=2.0, help="events per second per terminal")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--backlog", type=int, help="instead: this many events wait at the broker, then the consumers drain them"
    )
    args = parser.parse_args()
    if len(args.consumers) > 1:  # each consumer count in a fresh process: hundreds of clients per run
        for consumers in args.consumers:
            subprocess.run([sys.executable, __file__, *_without_consumers(sys.argv[1:]), "--consumers", str(consumers)])
        return
    if args.backlog:
        _backlog(args)
        return
    print(
        f"fleet_load: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
        f"{args.terminals} terminals x {args.rate:g} ev/s for {args.seconds:g} s; mosquitto on this machine"
    )
    with tempfile.TemporaryDirectory(prefix="fleet-load-") as tmp:
        root = Path(tmp)
        for consumers in args.consumers:
            broker = Mosquitto(root / f"broker-{consumers}").start()
            try:
                r = run_once(broker.port, root, args.terminals, args.rate, args.seconds, consumers)
            finally:
                broker.stop()
            once = "yes" if r["rows"] == r["stored"] == r["produced"] and r["unacked"] == 0 else "NO"
            print(
                f"consumers {consumers}: {r['events_per_s']:.0f} events/s stored (offered {r['offered_per_s']:.0f}/s, "
                f"the simulator sent {r['produced'] / r['sent_for_s']:.0f}/s; "
                f"{r['stored']}/{r['produced']} stored, each once: {once}; drained {r['drained_s']:.1f} s), "
                f"ack p50 {r['ack_p50_ms']:.0f} ms p99 {r['ack_p99_ms']:.0f} ms, "
                f"hub CPU {r['cpu_us_per_event']:.0f} us/event, resends {r['resends']}"
            )
            print(f"  load now {os.getloadavg()[0]:.2f}", flush=True)


def _without_consumers(argv: list[str]) -> list[str]:
    """The command line without ``--consumers`` and its values."""
    out, skipping = [], False
    for arg in argv:
        if arg == "--consumers":
            skipping = True
        elif skipping and arg.isdigit():
            continue
        else:
            skipping = False
            out.append(arg)
    return out


def _backlog(args: argparse.Namespace) -> None:
    from agent.delivery.broker import Mosquitto

    print(
        f"fleet_load --backlog: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
        f"{args.backlog} events from {args.terminals} terminals queued at the broker, then drained"
    )
    with tempfile.TemporaryDirectory(prefix="fleet-backlog-") as tmp:
        for consumers in args.consumers:
            broker = Mosquitto(Path(tmp) / f"broker-{consumers}").start()
            try:
                r = run_backlog(broker.port, Path(tmp), args.terminals, args.backlog, consumers)
            finally:
                broker.stop()
            once = "yes" if r["rows"] == r["stored"] == args.backlog and r["unacked"] == 0 else "NO"
            print(
                f"consumers {consumers}: drained {r['stored']} events in {r['took_s']:.1f} s = "
                f"{r['events_per_s']:.0f} events/s stored and acknowledged (each once: {once}), "
                f"hub CPU {r['cpu_us_per_event']:.0f} us/event",
                flush=True,
            )


if __name__ == "__main__":
    main()
