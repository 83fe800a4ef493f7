"""``store-agent run`` (the daemon) and ``store-agent replay`` (run replay sources to the end)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from agent.cli import add_config_option, log_level
from agent.config.loader import load_config
from agent.logsetup import configure_logging
from agent.runtime.agent import Agent
from agent.runtime.sink import JsonLinesSink

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    for name, func, text in (
        ("run", run, "run the agent as a daemon until SIGTERM"),
        ("replay", replay, "run until every replay source is exhausted, deliver everything, exit 0"),
    ):
        parser = sub.add_parser(name, help=text)
        add_config_option(parser)
        parser.add_argument(
            "--print-events", action="store_true", help="also print every event as a JSON line on stdout"
        )
        if name == "replay":
            parser.add_argument(
                "--timeout",
                type=float,
                default=3600.0,
                help="with an mqtt section: give up after this many seconds of replay and delivery (default 3600)",
            )
        parser.set_defaults(func=func)


def _install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(args: argparse.Namespace) -> int:
    """The daemon: pipelines into the durable outbox, MQTT delivery, health, commands, sd_notify."""
    from agent.runtime.daemon import Daemon

    loaded = load_config(args.config)
    configure_logging(loaded.config.logging, log_level(args))
    extra = JsonLinesSink(sys.stdout) if args.print_events else None
    daemon = Daemon(loaded, extra_sink=extra)  # DeliveryError is an AgentError: the CLI prints it, exit 78
    _install_signal_handlers(daemon.stop_event)
    with daemon:
        daemon.serve()
    return daemon.exit_code  # 0, or 75 when a pushed config asked for a restart (systemd starts it again)


def replay(args: argparse.Namespace) -> int:
    """Replay sources to their end. With an ``mqtt`` section the events go through the outbox to the broker, as
    in ``run``, and replay waits until the broker has acknowledged them all; without one they are printed."""
    from agent.cli import EXIT_INTERRUPTED, EXIT_UNAVAILABLE

    loaded = load_config(args.config)
    configure_logging(loaded.config.logging, log_level(args))
    if "mqtt" not in loaded.config.model_fields_set:
        agent = Agent(loaded, JsonLinesSink(sys.stdout), replay=True)
        _install_signal_handlers(agent.stop_event)
        with agent:
            while not agent.wait_finished(timeout=0.5) and not agent.stop_event.is_set():
                pass
        print(f"replay finished: {_summary(agent)}", file=sys.stderr)
        return EXIT_INTERRUPTED if agent.stop_event.is_set() and not agent.wait_finished(0) else 0

    from agent.cli import EXIT_FAILURE
    from agent.runtime.daemon import Daemon

    daemon = Daemon(loaded, extra_sink=JsonLinesSink(sys.stdout) if args.print_events else None, replay=True)
    _install_signal_handlers(daemon.stop_event)
    with daemon:
        finished, delivered = daemon.replay_to_end(args.timeout)
        interrupted = daemon.stop_event.is_set()
        accepted, left = daemon.outbox.accepted, daemon.outbox.rows
        connected, last_error = daemon.publisher.connected, daemon.publisher.conn.last_error
        summary = _summary(daemon.agent)
    mqtt = loaded.config.mqtt
    print(f"replay finished: {summary}; {accepted} accepted", file=sys.stderr)
    if not finished:
        if interrupted:
            print("replay: stopped before every source was exhausted", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"replay: --timeout {args.timeout:g} s came before every source was exhausted", file=sys.stderr)
        return EXIT_FAILURE
    if not delivered:
        link = "" if connected else f" (broker: {last_error or 'not connected'})"
        print(
            f"replay: {left} events not acknowledged by {mqtt.host}:{mqtt.port}{link}; they stay in the outbox "
            f"under {loaded.config.storage.state_dir} and go out on the next run",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    print(f"replay: all delivered to {mqtt.host}:{mqtt.port}", file=sys.stderr)
    return 0


def _summary(agent: Agent) -> str:
    return ", ".join(f"{n} {t}" for t, n in sorted(agent.emitted.items())) or "no events"
