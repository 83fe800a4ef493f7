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

from agent.cli.monitor_cmd import run_monitor
from agent.config.examples import example, installed, user_state_dir, writable
from agent.config.loader import LoadedConfig, load_config
from agent.delivery.broker import reachable, start_local_broker
from agent.logsetup import configure_logging
from agent.runtime.daemon import Daemon

DEMO_CONFIG = example("demo.yaml")  # shipped in the package: the demo works after a plain `pip install` too


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="run the demo config through MQTT and show the events arriving")
    parser.add_argument("--config", "-c", type=Path, default=DEMO_CONFIG, help="demo config (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    parser.set_defaults(func=demo)


def with_broker(loaded: LoadedConfig, host: str, port: int) -> LoadedConfig:
    c = loaded.config
    mqtt = c.mqtt.model_copy(update={"host": host, "port": port, "tls": None, "protocol": "3.1.1"})
    return LoadedConfig(c.model_copy(update={"mqtt": mqtt}), loaded.path, loaded.sha256, loaded.base)


def with_writable_state(loaded: LoadedConfig) -> LoadedConfig:
    """The config with its state (and a models directory that does not exist) moved to a per-user directory when
    it is the demo config shipped in an installed package, or its state directory is not writable by this user."""
    c = loaded.config
    state_dir = Path(c.storage.state_dir)
    if not installed(loaded.path) and writable(state_dir):
        return loaded
    home = user_state_dir("demo")
    storage = c.storage.model_copy(update={"state_dir": home / "state"})
    update: dict[str, Any] = {"storage": storage}
    if not Path(c.models.directory).is_dir():
        update["models"] = c.models.model_copy(update={"directory": home / "models"})
    print(f"demo: keeping the demo's state in {home}", file=sys.stderr)
    return LoadedConfig(config=c.model_copy(update=update), path=loaded.path, sha256=loaded.sha256)


def demo(args: argparse.Namespace) -> int:
    loaded = with_writable_state(load_config(args.config))
    configure_logging(loaded.config.logging, "DEBUG" if args.debug else "WARNING")
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
