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
EXIT_DATA = 65
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78
EXIT_INTERRUPTED = 130

#: Which module registers each subcommand, in the order they appear in ``--help``. Only the module of the
#: command being run is imported, so ``store-agent version`` does not load OpenCV, scipy or the models.
COMMANDS: dict[str, str] = {
    "run": "agent.cli.run_cmd",
    "replay": "agent.cli.run_cmd",
    "check-config": "agent.cli.config_cmd",
    "doctor": "agent.cli.doctor_cmd",
    "monitor": "agent.cli.monitor_cmd",
    "broker": "agent.cli.broker_cmd",
    "demo": "agent.cli.demo_cmd",
    "listen": "agent.cli.listen_cmd",
    "zones": "agent.cli.zones_cmd",
    "models": "agent.cli.models_cmd",
    "members": "agent.cli.members_cmd",
    "identify": "agent.cli.identify_cmd",
    "catalog": "agent.cli.catalog_cmd",
    "hub": "agent.cli.hub_cmd",
    "keys": "agent.cli.hub_cmd",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with only ``command``'s module loaded when it is known."""
    parser = argparse.ArgumentParser(prog="store-agent", description="Edge agent for in-store smart sensing terminals.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    version = sub.add_parser("version", help="print the agent version")
    version.set_defaults(func=lambda args: print(f"store-agent {__version__}") or EXIT_OK)
    if command == "version":
        return parser
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    from agent.config.errors import ConfigError
    from agent.errors import AgentError
    from agent.trust.keys import TrustKeyError
    from models.manifest import ModelError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(argv))
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
    except TrustKeyError as exc:
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
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
