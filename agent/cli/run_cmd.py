"""``store-agent run`` (the daemon) and ``store-agent replay`` (run replay sources to the end)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from agent.config.loader import LoadedConfig, load_config
from agent.logsetup import configure_logging
from agent.runtime.agent import Agent
from agent.runtime.sink import EventSink, JsonLinesSink

logger = logging.getLogger(__name__)


def register(sub: Any) -> None:
    for name, func, text in (
        ("run", run, "run the agent as a daemon until SIGTERM"),
        ("replay", replay, "run until every replay source is exhausted, deliver everything, exit 0"),
    ):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("--config", "-c", type=Path, required=True, help="the store YAML file")
        parser.add_argument(
            "--print-events", action="store_true", help="also print every event as a JSON line on stdout"
        )
        parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override logging.level")
        parser.set_defaults(func=func)


def make_sink(loaded: LoadedConfig, print_events: bool) -> EventSink:
    """The delivery sink for this config; JSON lines on stdout when asked."""
    return JsonLinesSink(sys.stdout)


def _install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _prepare(args: argparse.Namespace) -> tuple[LoadedConfig, EventSink]:
    loaded = load_config(args.config)
    configure_logging(loaded.config.logging, "DEBUG" if args.debug else args.log_level)
    return loaded, make_sink(loaded, args.print_events)


def run(args: argparse.Namespace) -> int:
    loaded, sink = _prepare(args)
    agent = Agent(loaded, sink)
    _install_signal_handlers(agent.stop_event)
    with agent:
        while not agent.stop_event.wait(60.0):
            logger.debug("health %s", json.dumps(agent.health()))
    return 0


def replay(args: argparse.Namespace) -> int:
    loaded, sink = _prepare(args)
    agent = Agent(loaded, sink, replay=True)
    _install_signal_handlers(agent.stop_event)
    with agent:
        while not agent.wait_finished(timeout=0.5):
            if agent.stop_event.is_set():
                break
    summary = ", ".join(f"{n} {t}" for t, n in sorted(agent.emitted.items())) or "no events"
    print(f"replay finished: {summary}", file=sys.stderr)
    return 130 if agent.stop_event.is_set() and not agent.wait_finished(0) else 0
