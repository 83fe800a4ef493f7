"""``store-agent demo``: the built-in demo, end to end through the outbox and MQTT to a monitor.

Uses the broker in ``config/demo.yaml`` when one answers there; otherwise it
starts a local one (mosquitto on a free port, or amqtt) for the run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent.cli import add_config_option, log_level
from agent.cli.monitor_cmd import run_monitor
from agent.config.loader import LoadedConfig, load_config
from agent.delivery.broker import reachable, start_local_broker
from agent.logsetup import configure_logging
from agent.runtime.daemon import Daemon

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="run the demo config through MQTT and show the events arriving")
    add_config_option(parser, required=False, help=f"demo config (default: {DEMO_CONFIG})")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    parser.set_defaults(func=demo, config=DEMO_CONFIG)


def with_broker(loaded: LoadedConfig, host: str, port: int) -> LoadedConfig:
    c = loaded.config
    mqtt = c.mqtt.model_copy(update={"host": host, "port": port, "tls": None, "protocol": "3.1.1"})
    return LoadedConfig(config=c.model_copy(update={"mqtt": mqtt}), path=loaded.path, sha256=loaded.sha256)


def demo(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    configure_logging(loaded.config.logging, log_level(args) or "WARNING")
    mqtt = loaded.config.mqtt
    broker: Any = None
    with tempfile.TemporaryDirectory(prefix="store-agent-demo-") as tmp:
        if reachable(mqtt.host, mqtt.port):
            print(f"demo: using the broker at {mqtt.host}:{mqtt.port}", file=sys.stderr)
        else:
            broker = start_local_broker(Path(tmp))
            print(
                f"demo: no broker at {mqtt.host}:{mqtt.port}; started {type(broker).__name__.lower()} "
                f"on 127.0.0.1:{broker.port}",
                file=sys.stderr,
            )
            loaded = with_broker(loaded, "127.0.0.1", broker.port)
        try:
            return _run(loaded, args.timeout)
        finally:
            if broker is not None:
                broker.stop()


def _run(loaded: LoadedConfig, timeout: float) -> int:
    config = loaded.config
    stop = threading.Event()
    result: dict[str, Any] = {}
    watcher = threading.Thread(
        target=lambda: result.update(
            monitor=run_monitor(config.mqtt, config.store.id, config.terminal.id, ack=True, stop=stop)
        ),
        daemon=True,
    )
    watcher.start()
    with Daemon(loaded, replay=True) as daemon:
        _, delivered = daemon.replay_to_end(timeout)
        accepted = daemon.outbox.accepted
    time.sleep(1.0)
    stop.set()
    watcher.join(10)
    seen = result["monitor"].unique if "monitor" in result else 0
    print(
        f"demo: {accepted} events accepted, {'all' if delivered else 'NOT all'} delivered; the monitor saw {seen}",
        file=sys.stderr,
    )
    return 0 if delivered and seen >= accepted else 1
