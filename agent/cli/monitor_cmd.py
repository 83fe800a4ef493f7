"""``store-agent monitor``: watch a store's (or one terminal's) events and status, as the hub would."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from agent.cli import add_config_option
from agent.cli.hub_cmd import DEFAULT_REGISTRY, read_hub_key
from agent.config.loader import load_config
from agent.config.schema import MqttSection
from agent.delivery.monitor import Monitor
from agent.trust.keys import HubPrivateKey
from agent.trust.messages import TerminalRegistry, Verdict


def register(sub: Any) -> None:
    parser = sub.add_parser("monitor", help="print a store's events and status changes from MQTT (acks in hub mode)")
    add_config_option(parser, help="a store YAML file (broker and store id)")
    parser.add_argument("--terminal", "-t", help="only this terminal (default: every terminal of the store)")
    parser.add_argument("--json", action="store_true", help="print each event's JSON payload on one line")
    parser.add_argument("--health", action="store_true", help="also print health messages")
    parser.add_argument("--client-id", help="MQTT client id of this persistent subscriber")
    parser.add_argument(
        "--count", type=int, help="exit after this many unique events (exit 1 if --timeout comes first)"
    )
    parser.add_argument("--timeout", type=float, help="exit after this many seconds")
    ack = parser.add_mutually_exclusive_group()
    ack.add_argument("--ack", dest="ack", action="store_true", default=None, help="acknowledge events (hub role)")
    ack.add_argument("--no-ack", dest="ack", action="store_false", help="never acknowledge events")
    parser.add_argument(
        "--hub-key", type=Path, help="the hub's key (hub.key): sign acks and check every terminal's MAC"
    )
    parser.add_argument(
        "--terminals", type=Path, help="registry of terminal keys (default: terminals.yaml beside --hub-key)"
    )
    parser.add_argument(
        "--tofu", action="store_true", help="register a terminal's key from its first status (trust on first use)"
    )
    parser.set_defaults(func=monitor)


ENVELOPE = {
    "schema_version", "type", "event_id", "store_id", "terminal_id", "seq", "captured_at", "emitted_at", "clock_synced"
}  # fmt: skip


def event_line(terminal: str, payload: dict[str, Any], duplicate: bool) -> str:
    """One event as a line; a time stamped by a terminal whose clock was not synchronised is marked ``~``."""
    fields = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in payload.items() if k not in ENVELOPE)
    mark = " (duplicate)" if duplicate else ""
    approximate = "~" if payload.get("clock_synced") is False else ""
    return (
        f"{approximate}{payload.get('emitted_at', '?')} {terminal} #{payload.get('seq')} {payload.get('type')}{mark} "
        f"{fields}"
    )


def status_line(terminal: str, kind: str, payload: dict[str, Any]) -> str:
    if kind == "health":
        outbox = payload.get("outbox", {})
        return (
            f"{payload.get('at', '?')} {terminal} HEALTH uptime {payload.get('uptime_s')} s, "
            f"watchdog {'ok' if payload.get('watchdog_ok') else 'FAILING'}, outbox {outbox.get('depth')} events"
        )
    extra = f" ({payload['reason']})" if payload.get("reason") else ""
    return (
        f"{payload.get('at', '?')} {terminal} STATUS {str(payload.get('state', '?')).upper()}{extra} "
        f"v{payload.get('version')} boot {payload.get('boot_count')} pipelines {','.join(payload.get('pipelines', []))}"
    )


def run_monitor(
    settings: MqttSection,
    store_id: str,
    terminal: str | None,
    *,
    ack: bool,
    as_json: bool = False,
    health: bool = False,
    client_id: str | None = None,
    count: int | None = None,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    hub_key: HubPrivateKey | None = None,
    registry: TerminalRegistry | None = None,
    tofu: bool = False,
) -> Monitor:
    """Print until ``stop``, ``count`` unique events or ``timeout``; returns the stopped monitor."""
    stop = stop or threading.Event()
    lock = threading.Lock()

    def on_event(term: str, payload: dict[str, Any], duplicate: bool) -> None:
        text = json.dumps(payload, ensure_ascii=False) if as_json else event_line(term, payload, duplicate)
        if as_json and duplicate:
            return
        with lock:
            print(text, flush=True)

    def on_status(term: str, kind: str, payload: dict[str, Any]) -> None:
        if not as_json:
            with lock:
                print(status_line(term, kind, payload), flush=True)

    def on_rejected(term: str, kind: str, payload: dict[str, Any], verdict: Verdict) -> None:
        what = payload.get("type", kind) if kind == "events" else kind
        with lock:
            print(
                f"REJECTED ({verdict.value}) {term} {what} {json.dumps(payload, ensure_ascii=False)}", file=sys.stderr
            )

    monitor = Monitor(
        settings,
        store_id,
        terminal,
        client_id=client_id or f"store-agent-monitor-{store_id}-{terminal or 'all'}",
        ack=ack,
        on_event=on_event,
        on_status=on_status,
        health=health,
        hub_key=hub_key,
        registry=registry,
        tofu=tofu,
        on_rejected=on_rejected,
    )
    deadline = None if timeout is None else time.monotonic() + timeout
    with monitor:
        while not stop.is_set():
            if count is not None and monitor.unique >= count:
                break
            if deadline is not None and time.monotonic() > deadline:
                break
            if not monitor.conn.connected and monitor.conn.last_error:
                print(f"monitor: {monitor.conn.last_error}", file=sys.stderr)
                monitor.conn.wait_connected(5.0)
            stop.wait(0.1)
    return monitor


def monitor(args: argparse.Namespace) -> int:
    config = load_config(args.config).config
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    ack = config.mqtt.ack == "hub" if args.ack is None else args.ack
    hub_key = read_hub_key(args.hub_key) if args.hub_key else None
    registry_path = args.terminals or (args.hub_key.parent / DEFAULT_REGISTRY if args.hub_key else None)
    registry = TerminalRegistry.load(registry_path) if registry_path else None
    if hub_key is None:
        print(
            "monitor: no --hub-key: terminal MACs are not checked and acks are unsigned (terminals ignore them)",
            file=sys.stderr,
        )
    mon = run_monitor(
        config.mqtt,
        config.store.id,
        args.terminal,
        ack=ack,
        as_json=args.json,
        health=args.health,
        client_id=args.client_id,
        count=args.count,
        timeout=args.timeout,
        stop=stop,
        hub_key=hub_key,
        registry=registry,
        tofu=args.tofu,
    )
    rejected = f", rejected {mon.rejected}" if mon.rejected else ""
    print(f"monitor: {mon.unique} events, {mon.duplicates} duplicates{rejected}", file=sys.stderr)
    if args.count is not None and mon.unique < args.count and not stop.is_set():
        print(f"monitor: --count {args.count} not reached within --timeout {args.timeout:g} s", file=sys.stderr)
        return 1
    return 0
