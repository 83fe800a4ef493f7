"""``store-agent check-config --config PATH [--strict]``: validate a store YAML and print a one-screen summary.

The path may also come as the one positional argument (the older spelling, kept so scripts keep working).

``--strict`` also checks what the daemon needs at start (``agent.runtime.preflight``): secrets, the gallery with
its key, the models of enabled pipelines, device paths. A problem is a line on stderr; exit 78 if any is a config
or secret problem, else 69 if a model or device is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.cli import add_config_option
from agent.config.advice import config_warnings
from agent.config.loader import load_config
from agent.delivery.topics import Topics
from drivers.registry import create_driver


def register(sub: Any) -> None:
    parser = sub.add_parser("check-config", help="validate a store config file (exit 78 if invalid)")
    add_config_option(parser, required=False)
    parser.add_argument("path", type=Path, nargs="?", help="the store YAML file (same as --config)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also check secrets, the gallery key, models and device paths: a clean report means `run` will start "
        "(exit 78 config/secret, 69 missing model or device)",
    )
    parser.set_defaults(func=check_config, parser=parser)


def check_config(args: argparse.Namespace) -> int:
    if args.path is not None and args.config is not None and args.path != args.config:
        args.parser.error(f"two config files given: {args.config} and {args.path}")
    if args.config is None and args.path is None:
        args.parser.error("the config file is required: --config PATH")
    path: Path = args.config or args.path
    loaded = load_config(path)
    c = loaded.config
    if args.strict:
        from agent.cli import EXIT_CONFIG, EXIT_UNAVAILABLE
        from agent.runtime import preflight

        problems = preflight.check(c)
        if problems:
            for problem in problems:
                print(f"error: {problem.line()}", file=sys.stderr)
            if any(p.blocks_start for p in problems):
                print(f"{path}: the daemon would not start ({len(problems)} problem(s))", file=sys.stderr)
            else:
                offline = "the daemon starts, but these devices stay offline until they appear"
                print(f"{path}: {offline}", file=sys.stderr)
            return EXIT_CONFIG if any(p.kind == "config" for p in problems) else EXIT_UNAVAILABLE
    print(f"{path}: valid (sha256 {loaded.sha256[:12]})")
    print(f"  store     {c.store.id} ({c.store.name}, {c.store.timezone})")
    print(f"  terminal  {c.terminal.id} {c.terminal.location}".rstrip())
    tls = "TLS" if c.mqtt.tls else "plain TCP"
    topics = f"{Topics.for_config(c).base}/"
    print(f"  mqtt      {c.mqtt.host}:{c.mqtt.port} MQTT {c.mqtt.protocol}, {tls}, topics {topics}")
    print(f"  state     {c.storage.state_dir}")
    for kind, options in c.devices():
        print(f"  {kind:<9} {options.name:<16} {create_driver(kind, options).describe()}")
    print(f"  pipelines {', '.join(c.pipelines.enabled_names()) or 'none'}")
    print(f"  models    {c.models.directory} on {', '.join(c.models.providers)}")
    egress = [name for name, allowed in c.privacy.egress.model_dump().items() if allowed]
    print(f"  egress    {', '.join(egress) or 'nothing biometric or raw leaves the device'}")
    keys = len(c.trust.hub_keys) + (1 if c.trust.hub_keys_credential else 0)
    print(f"  trust     {keys} hub key source(s); open commands: {', '.join(c.trust.open_commands) or 'none'}")
    if args.strict:
        counts = preflight.checked(c)
        print(
            f"  preflight secrets, gallery, {counts['models']} model(s), {counts['devices']} device path(s): "
            "the daemon will start"
        )
    for warning in config_warnings(c):
        print(f"warning: {warning}")
    return 0
