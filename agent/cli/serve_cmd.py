"""``store-agent hub serve``: store and acknowledge every store's events with N cooperating consumers.

    store-agent hub serve --config chain.yaml --key hub.key --state-dir /var/lib/store-hub --processes 4

See agent.hub.serve (the supervisor and the workers) and agent.hub.consumer. Exit 0 when stopped by SIGTERM or
SIGINT (each worker acknowledges what it stored first), 2 bad arguments, 78 an unusable config or hub key.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from agent.cli import EXIT_USAGE, add_config_option

DEFAULT_REGISTRY = "terminals.yaml"


def register(actions: Any) -> None:
    serve = actions.add_parser(
        "serve", help="store and acknowledge every store's events: N consumers in one shared subscription group"
    )
    add_config_option(serve, help="a YAML file with the chain broker (mqtt)")
    serve.add_argument("--key", type=Path, required=True, help="the hub's private key (hub.key)")
    serve.add_argument(
        "--terminals", type=Path, help=f"registry of terminal keys (default: {DEFAULT_REGISTRY} beside --key)"
    )
    serve.add_argument("--state-dir", type=Path, required=True, help="where the event store (events.sqlite3) lives")
    serve.add_argument("--processes", type=int, default=1, metavar="N", help="consumer processes (default 1)")
    serve.add_argument("--group", default="hub", help="the shared subscription group (default: hub)")
    serve.add_argument("--client-id", help="client id base; process i is <base>-<i> (default: store-agent-<group>)")
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Exit 0 when stopped by SIGTERM/SIGINT, 2 bad arguments, 78 an unusable config or key."""
    if not 1 <= args.processes <= 64:
        print("error: --processes must be 1 to 64", file=sys.stderr)
        return EXIT_USAGE
    if not args.group or any(c in args.group for c in "/+#$"):
        print("error: --group must be a name without '/', '+', '#' or '$'", file=sys.stderr)
        return EXIT_USAGE
    from agent.cli.hub_cmd import read_hub_key
    from agent.config.loader import load_config
    from agent.hub.serve import supervise, work

    settings = load_config(args.config).config.mqtt  # an invalid config stops here with 78, before any worker
    hub_key = read_hub_key(args.key)
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    if args.worker is not None:
        return work(
            settings,
            hub_key,
            args.terminals or args.key.parent / DEFAULT_REGISTRY,
            args.state_dir,
            group=args.group,
            client_id_base=args.client_id or f"store-agent-{args.group}",
            index=args.worker,
            stop=stop,
        )
    return supervise(lambda i: _worker_argv(args, i), args.processes, args.group, stop)


def _worker_argv(args: argparse.Namespace, index: int) -> list[str]:
    argv = [sys.executable, "-m", "agent", "hub", "serve", "--config", str(args.config), "--key", str(args.key)]
    argv += ["--state-dir", str(args.state_dir), "--processes", str(args.processes), "--group", args.group]
    if args.terminals is not None:
        argv += ["--terminals", str(args.terminals)]
    if args.client_id is not None:
        argv += ["--client-id", args.client_id]
    if getattr(args, "log_level", None):
        argv += ["--log-level", args.log_level]
    return [*argv, "--worker", str(index)]
