"""The terminal's own commands: ``ping``, ``reload-config``, ``apply-config``, ``set-log-level``, ``outbox-stats``."""

from __future__ import annotations

import logging
from typing import Any

from agent import __version__
from agent.commands.base import Command, CommandFailed, CommandHost, no_args, unknown_args

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _ping(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    no_args("ping", args)
    return {
        "pong": True,
        "version": __version__,
        "uptime_s": round(host.uptime_s(), 1),
        "boot_count": host.boot_count(),
    }


PING = Command("ping", "Liveness check: version, uptime and boot counter.", _ping)


def _reload_config(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    no_args("reload-config", args)
    return host.reload_config()


RELOAD_CONFIG = Command(
    "reload-config",
    "Validate the config file again and, if valid, restart sources and pipelines with it.",
    _reload_config,
)


def _apply_config(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    unknown_args(args, {"config", "base", "restart"})
    text, base, restart = args.get("config"), args.get("base"), args.get("restart", False)
    if not isinstance(text, str) or (base is not None and not isinstance(base, str)) or not isinstance(restart, bool):
        raise CommandFailed(
            'give "config" (the YAML text), optionally "base" (the base file it names) and "restart": true/false'
        )
    return host.apply_config(text, base, restart)


APPLY_CONFIG = Command(
    "apply-config",
    "Validate a pushed config (and its base), write it and apply it, or refuse with every problem found.",
    _apply_config,
    max_bytes=600 * 1024,
    time_limit_s=120.0,
)


def _set_log_level(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    level = args.get("level")
    name = args.get("logger")
    if level not in LOG_LEVELS:
        raise CommandFailed(f"level must be one of {', '.join(LOG_LEVELS)} (got {level!r})")
    if name is not None and (not isinstance(name, str) or not name):
        raise CommandFailed("logger must be a logger name such as 'agent.delivery'")
    unknown_args(args, {"level", "logger"})
    target = logging.getLogger(name)
    previous = logging.getLevelName(target.level)
    target.setLevel(level)
    return {"logger": name or "root", "level": level, "previous": previous}


SET_LOG_LEVEL = Command(
    "set-log-level", 'Change a log level at run time: {"level": "DEBUG", "logger": "drivers"}.', _set_log_level
)


def _outbox_stats(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    no_args("outbox-stats", args)
    return host.outbox.stats()


OUTBOX_STATS = Command("outbox-stats", "Outbox depth, bytes, oldest age and drop counters.", _outbox_stats)
