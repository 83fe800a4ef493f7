"""``store-agent doctor``: checks that this terminal can run its config, one line per check with what to do.

Exit status: 0 when every check passed (WARN lines do not fail), 1 when one failed, 78 when the config itself
cannot be loaded (as for every command). systemd/install.sh runs it last, as the service user.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.cli import EXIT_FAILURE, EXIT_OK
from agent.config.loader import load_config

DEFAULT_CONFIG = Path("/etc/store-agent/store.yaml")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "doctor", help="check Python, providers, models, devices, secrets, broker, clock and disk for a config"
    )
    parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG, help="store YAML (default: %(default)s)")
    parser.add_argument("--broker-timeout", type=float, default=5.0, help="seconds to wait for the broker")
    parser.set_defaults(func=doctor)


def doctor(args: argparse.Namespace) -> int:
    from agent.runtime.doctor import run_checks

    loaded = load_config(args.config)
    checks = run_checks(loaded, args.broker_timeout)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.status == "FAIL"]
    summary = f"doctor: {len(checks)} checks, {len(failed)} failed" + (
        f" ({', '.join(dict.fromkeys(c.name for c in failed))})" if failed else ""
    )
    print(summary, file=sys.stderr)
    return EXIT_FAILURE if failed else EXIT_OK
