"""What a command is: a name, a summary, a handler and a payload limit; and how a request becomes a reply.

Commands arrive on ``cmd/<name>`` and are answered on ``cmd/<name>/reply``,
the reply echoing ``request_id``. Bad requests (oversize payload, malformed
JSON, an unknown name, bad arguments) get an error reply and change nothing.
The table of commands is ``agent.commands.COMMANDS``. Before anything runs, the request passes the terminal's
:class:`agent.trust.commands.CommandAuthority`: every command but the open ones (``trust.open_commands``,
``ping`` by default) must be signed by the hub, and retained, replayed, expired or misdirected requests are
refused with the reason.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent.events import iso_time
from agent.trust.commands import CommandAuthority, CommandRefused

if TYPE_CHECKING:
    from agent.config.loader import LoadedConfig
    from agent.delivery.outbox import Outbox
    from agent.delivery.publisher import CommandRequest
    from agent.pipelines.shared import Shared

logger = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 64 * 1024


class CommandFailed(Exception):
    """The command was understood but cannot be done; the message goes into the error reply."""


class CommandHost(Protocol):
    """What a command may use: the running daemon."""

    outbox: Outbox
    loaded: LoadedConfig

    def shared(self) -> Shared | None:
        """What the running agent's pipelines share (gallery, kiosk frames); None while no agent runs."""
        ...

    def uptime_s(self) -> float: ...

    def boot_count(self) -> int: ...

    def reload_config(self) -> dict[str, Any]: ...

    def apply_config(self, text: str, base_text: str | None, restart: bool) -> dict[str, Any]: ...


Handler = Callable[[CommandHost, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    handler: Handler
    max_bytes: int = MAX_COMMAND_BYTES
    #: Longest the daemon waits for the handler before replying that it timed out.
    time_limit_s: float = 30.0


def request_id_of(payload: bytes) -> str | None:
    """The request id of a payload, best effort: echoed in a refusal so the sender can match it (it is not trusted,
    only echoed)."""
    try:
        value = json.loads(payload).get("request_id")
    except (ValueError, AttributeError):
        return None
    return str(value) if isinstance(value, str | int) else None


def table(*commands: Command) -> dict[str, Command]:
    """Commands by name; a name given twice is a programming error."""
    out: dict[str, Command] = {}
    for entry in commands:
        if entry.name in out:
            raise ValueError(f"command {entry.name!r} is listed twice")
        out[entry.name] = entry
    return out


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


def handle(
    commands: Mapping[str, Command], host: CommandHost, authority: CommandAuthority, incoming: CommandRequest
) -> dict[str, Any]:
    """Check and run one command request and build its reply (never raises)."""
    name, raw = incoming.name, incoming.payload
    limit = commands[name].max_bytes if name in commands else MAX_COMMAND_BYTES
    if len(raw) > limit:
        return reply(name, None, error=f"payload is {len(raw)} bytes; the limit is {limit}")
    try:
        verified = authority.unwrap(incoming.topic, name, raw, incoming.retained)
    except CommandRefused as exc:
        logger.warning("command %s refused: %s", name, exc)
        return reply(name, request_id_of(raw), error=f"refused: {exc}")
    try:
        request = json.loads(verified.body.decode("utf-8")) if verified.body.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        return reply(name, None, error=f"malformed JSON: {exc}")
    if not isinstance(request, dict):
        return reply(name, None, error='the request must be a JSON object such as {"request_id": "..."}')
    request_id = request.pop("request_id", None)
    if request_id is not None and not isinstance(request_id, str | int):
        return reply(name, None, error="request_id must be a string")
    rid = None if request_id is None else str(request_id)
    entry = commands.get(name)
    if entry is None:
        return reply(name, rid, error=f"unknown command {name!r}; known: {', '.join(sorted(commands))}")
    try:
        args = authority.admit(verified, request)
    except CommandRefused as exc:
        logger.warning("command %s refused: %s", name, exc)
        return reply(name, rid, error=f"refused: {exc}")
    try:
        result = entry.handler(host, args)
    except CommandFailed as exc:
        logger.warning("command %s failed: %s", name, exc)
        return reply(name, rid, error=str(exc))
    except Exception as exc:
        logger.exception("command %s raised", name)
        return reply(name, rid, error=f"internal error: {type(exc).__name__}: {exc}")
    logger.info("command %s done (request %s)", name, rid)
    return reply(name, rid, result=result)


def no_args(name: str, args: dict[str, Any]) -> None:
    if args:
        raise CommandFailed(f"{name} takes no arguments (got {', '.join(sorted(args))})")


def unknown_args(args: dict[str, Any], allowed: set[str]) -> None:
    extra = set(args) - allowed
    if extra:
        raise CommandFailed(f"unknown argument(s): {', '.join(sorted(extra))}")
