"""``store-agent``: the command line. One module per subcommand, each exposing ``register(subparsers)``.

Exit codes (documented in the README): 0 success, 1 runtime failure, 2 usage,
69 a required model or device is unavailable, 78 invalid configuration (systemd
does not restart on it: ``RestartPreventExitStatus=78``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from agent import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78
EXIT_INTERRUPTED = 130

#: Subcommand modules, in the order they appear in ``--help``.
COMMAND_MODULES = [
    "agent.cli.run_cmd",
    "agent.cli.config_cmd",
    "agent.cli.monitor_cmd",
    "agent.cli.demo_cmd",
    "agent.cli.listen_cmd",
    "agent.cli.zones_cmd",
    "agent.cli.models_cmd",
    "agent.cli.members_cmd",
    "agent.cli.identify_cmd",
    "agent.cli.catalog_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="store-agent", description="Edge agent for in-store smart sensing terminals.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    version = sub.add_parser("version", help="print the agent version")
    version.set_defaults(func=lambda args: print(f"store-agent {__version__}") or EXIT_OK)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from agent.config.loader import ConfigError
    from agent.runtime.agent import AgentError
    from models.manifest import ModelError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)
        if args.debug:
            raise
        return EXIT_CONFIG
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.debug:
            raise
        return EXIT_CONFIG
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.debug:
            raise
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
