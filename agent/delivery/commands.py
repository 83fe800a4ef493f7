"""Commands from the hub: ``cmd/<name>`` in, ``cmd/<name>/reply`` out, the reply echoing ``request_id``.

Adding a command is one function::

    @command("erase-member", "Remove a member and every queued event carrying their id.")
    def erase_member(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
        ...

Bad requests (oversize payload, malformed JSON, an unknown name, bad
arguments) get an error reply and change nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent import __version__
from agent.events import iso_time

if TYPE_CHECKING:
    from agent.config.loader import LoadedConfig
    from agent.delivery.outbox import Outbox

logger = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 64 * 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class CommandFailed(Exception):
    """The command was understood but cannot be done; the message goes into the error reply."""


class CommandHost(Protocol):
    """What a command may use: the running daemon."""

    outbox: Outbox
    loaded: LoadedConfig

    def services(self) -> dict[str, Any]:
        """The running agent's shared services (``RuntimeContext.services``); empty while none runs."""
        ...

    def uptime_s(self) -> float: ...

    def boot_count(self) -> int: ...

    def reload_config(self) -> dict[str, Any]: ...


Handler = Callable[[CommandHost, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    handler: Handler
    max_bytes: int = MAX_COMMAND_BYTES


COMMANDS: dict[str, Command] = {}


def command(name: str, summary: str, max_bytes: int = MAX_COMMAND_BYTES) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``cmd/<name>``; ``max_bytes`` raises the payload limit (e.g. for photos)."""

    def register(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"command {name!r} registered twice")
        COMMANDS[name] = Command(name, summary, handler, max_bytes)
        return handler

    return register


def reply(name: str, request_id: str | None, *, result: Any = None, error: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "request_id": request_id,
        "command": name,
        "ok": error is None,
        "at": iso_time(time.time()),
    }
    if error is None:
        payload["result"] = result if result is not None else {}
    else:
        payload["error"] = error
    return payload


def handle(host: CommandHost, name: str, raw: bytes) -> dict[str, Any]:
    """Run one command request and build its reply (never raises)."""
    limit = COMMANDS[name].max_bytes if name in COMMANDS else MAX_COMMAND_BYTES
    if len(raw) > limit:
        return reply(name, None, error=f"payload is {len(raw)} bytes; the limit is {limit}")
    try:
        request = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        return reply(name, None, error=f"malformed JSON: {exc}")
    if not isinstance(request, dict):
        return reply(name, None, error='the request must be a JSON object such as {"request_id": "..."}')
    request_id = request.pop("request_id", None)
    if request_id is not None and not isinstance(request_id, str | int):
        return reply(name, None, error="request_id must be a string")
    rid = None if request_id is None else str(request_id)
    entry = COMMANDS.get(name)
    if entry is None:
        return reply(name, rid, error=f"unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")
    try:
        result = entry.handler(host, request)
    except CommandFailed as exc:
        logger.warning("command %s failed: %s", name, exc)
        return reply(name, rid, error=str(exc))
    except Exception as exc:
        logger.exception("command %s raised", name)
        return reply(name, rid, error=f"internal error: {type(exc).__name__}: {exc}")
    logger.info("command %s done (request %s)", name, rid)
    return reply(name, rid, result=result)


def _no_args(name: str, args: dict[str, Any]) -> None:
    if args:
        raise CommandFailed(f"{name} takes no arguments (got {', '.join(sorted(args))})")


@command("ping", "Liveness check: version, uptime and boot counter.")
def ping(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    _no_args("ping", args)
    return {
        "pong": True,
        "version": __version__,
        "uptime_s": round(host.uptime_s(), 1),
        "boot_count": host.boot_count(),
    }


@command("reload-config", "Validate the config file again and, if valid, restart sources and pipelines with it.")
def reload_config(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    _no_args("reload-config", args)
    return host.reload_config()


@command("set-log-level", 'Change a log level at run time: {"level": "DEBUG", "logger": "drivers"}.')
def set_log_level(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    level = args.get("level")
    name = args.get("logger")
    if level not in LOG_LEVELS:
        raise CommandFailed(f"level must be one of {', '.join(LOG_LEVELS)} (got {level!r})")
    if name is not None and (not isinstance(name, str) or not name):
        raise CommandFailed("logger must be a logger name such as 'agent.delivery'")
    unknown = set(args) - {"level", "logger"}
    if unknown:
        raise CommandFailed(f"unknown argument(s): {', '.join(sorted(unknown))}")
    target = logging.getLogger(name)
    previous = logging.getLevelName(target.level)
    target.setLevel(level)
    return {"logger": name or "root", "level": level, "previous": previous}


@command("outbox-stats", "Outbox depth, bytes, oldest age and drop counters.")
def outbox_stats(host: CommandHost, args: dict[str, Any]) -> dict[str, Any]:
    _no_args("outbox-stats", args)
    return host.outbox.stats()
