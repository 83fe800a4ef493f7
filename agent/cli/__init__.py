"""``store-agent``: the command line. One module per subcommand, each exposing ``register(subparsers)``.

Exit codes (documented in the README, per command; tests/agent/test_exit_codes.py produces each one):
0 success, 1 runtime failure, 2 usage, 65 bad input data, 69 a required model, device or broker is
unavailable, 75 (``run``) a pushed config asks for a restart, 78 invalid configuration, an unusable secret or a
corrupt state file (systemd restarts on neither 78 nor 69: ``RestartPreventExitStatus=78 69``), 130
interrupted. ``run`` checks what it needs before it opens anything (``agent.runtime.preflight``) and stops at the
first problem with one line; ``check-config --strict`` lists them all.

``--debug`` and ``--log-level`` are accepted anywhere on the line (every parser, nested ones included, is an
``AgentParser``), and no input produces a traceback without ``--debug``: an unexpected exception is one line
on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent import __version__

logger = logging.getLogger("agent.cli")

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


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class AgentParser(argparse.ArgumentParser):
    """A parser that takes ``--debug`` and ``--log-level`` wherever they appear.

    ``add_subparsers`` makes its children of the parser's own class, so every command and action parser gets
    the two options too. Below the root their default is ``SUPPRESS``: a child sets them only when they are
    given there, and never overwrites what was given before the command.
    """

    def __init__(self, *args: Any, root: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug",
            action="store_true",
            default=False if root else argparse.SUPPRESS,
            help="show tracebacks and debug logs (anywhere on the line)",
        )
        self.add_argument(
            "--log-level",
            type=str.upper,
            choices=LOG_LEVELS,
            default=None if root else argparse.SUPPRESS,
            help="log level for this run, over the config's logging.level (anywhere on the line)",
        )


def add_config_option(parser: argparse.ArgumentParser, *, required: bool = True, help: str | None = None) -> None:
    """``--config/-c PATH``: the same spelling on every command that reads a store config."""
    parser.add_argument(
        "--config", "-c", type=Path, required=required, metavar="PATH", help=help or "the store YAML file"
    )


def log_level(args: argparse.Namespace) -> str | None:
    """The level the command line asks for (``--debug`` wins over ``--log-level``), or None for the config's."""
    if getattr(args, "debug", False):
        return "DEBUG"
    level: str | None = getattr(args, "log_level", None)
    return level


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with only ``command``'s module loaded when it is known."""
    parser = AgentParser(prog="store-agent", description="Edge agent for in-store smart sensing terminals.", root=True)
    parser.add_argument("--version", action="version", version=f"store-agent {__version__}")
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
    """The first word that is neither an option nor the value of ``--log-level``."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log-level":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from agent.config.errors import ConfigError
    from agent.errors import AgentError
    from agent.trust.keys import TrustKeyError
    from drivers.base import DeviceError
    from models.manifest import ModelError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    # Commands that read a config's logging section (run, replay, demo) reconfigure with the same override.
    logging.basicConfig(level=log_level(args) or "WARNING", format="%(levelname)s %(name)s: %(message)s", force=True)
    logger.debug("store-agent %s: %s", __version__, " ".join(argv))
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
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.debug:
            raise
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # a bug or an input no command foresaw: one line, the traceback only with --debug
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc} (--debug shows the traceback)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
