"""Every MQTT topic the agent and the hub use, built in one place.

Layout (Sparkplug / Zigbee2MQTT conventions): ``<prefix>/<store_id>/<terminal_id>/`` then
``status`` (retained, last will), ``health`` (retained), ``events/<type>``, ``ack`` (hub to
terminal, ``ack: hub`` mode), ``cmd/<name>`` in and ``cmd/<name>/reply`` out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config.schema import StoreConfig

STATUS = "status"
HEALTH = "health"
EVENTS = "events"
ACK = "ack"
CMD = "cmd"
REPLY = "reply"


@dataclass(frozen=True)
class Topics:
    """Topics of one terminal (or, with ``terminal_id='+'``, the filters for a whole store)."""

    prefix: str
    store_id: str
    terminal_id: str

    @staticmethod
    def for_config(config: StoreConfig) -> Topics:
        """The topics of the terminal a store config describes."""
        return Topics(config.mqtt.topic_prefix, config.store.id, config.terminal.id)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.store_id}/{self.terminal_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/{STATUS}"

    @property
    def health(self) -> str:
        return f"{self.base}/{HEALTH}"

    @property
    def ack(self) -> str:
        return f"{self.base}/{ACK}"

    def event(self, event_type: str) -> str:
        return f"{self.base}/{EVENTS}/{event_type}"

    def reply(self, name: str) -> str:
        return f"{self.base}/{CMD}/{name}/{REPLY}"

    @property
    def command_filter(self) -> str:
        """Matches ``cmd/<name>`` but not the replies one level below."""
        return f"{self.base}/{CMD}/+"

    def with_terminal(self, terminal_id: str) -> Topics:
        return Topics(self.prefix, self.store_id, terminal_id)


@dataclass(frozen=True)
class ParsedTopic:
    """A topic split into its parts (``kind`` is status, health, events, ack, cmd or reply)."""

    store_id: str
    terminal_id: str
    kind: str
    name: str | None = None


def parse_topic(prefix: str, topic: str) -> ParsedTopic | None:
    """Split a topic under ``prefix``; ``None`` when it is not one of ours."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) < 3:
        return None
    store, terminal, kind, rest = parts[0], parts[1], parts[2], parts[3:]
    if kind in (STATUS, HEALTH, ACK) and not rest:
        return ParsedTopic(store, terminal, kind)
    if kind == EVENTS and len(rest) == 1:
        return ParsedTopic(store, terminal, kind, rest[0])
    if kind == CMD and len(rest) == 1:
        return ParsedTopic(store, terminal, CMD, rest[0])
    if kind == CMD and len(rest) == 2 and rest[1] == REPLY:
        return ParsedTopic(store, terminal, REPLY, rest[0])
    return None
