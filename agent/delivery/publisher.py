"""Moves events from the outbox to the broker in order, and routes what the hub sends back.

One pump thread owns the sending side: it publishes committed rows in outbox
order with at most ``window`` QoS 1 messages in flight, and after every
(re)connect starts again from the oldest unacknowledged row (events that paho
still holds in flight are left to paho's own resend). With ``ack: broker`` a
row is deleted when its PUBACK arrives; with ``ack: hub`` a PUBACK only frees
the window and the row is deleted when the hub acknowledges the event id on
``<terminal>/ack`` (a PUBACK is a hop, not delivery: a broker that crashes
before the hub reads the message would otherwise lose it). Rows the hub has not
acknowledged within ``hub_ack_timeout_s`` are sent again, with the timeout
doubling while the hub stays silent.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from agent.config.schema import MqttSection
from agent.delivery.client import Connected, Disconnected, Incoming, Message, MqttConnection, Published, Wake
from agent.delivery.outbox import Outbox
from agent.delivery.topics import ACK, CMD, Topics, parse_topic

logger = logging.getLogger(__name__)

MAX_HUB_RESEND_S = 600.0
#: (command name, raw payload) handed to the daemon's main loop.
CommandQueue = queue.Queue[tuple[str, bytes]]


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class Publisher:
    def __init__(
        self,
        settings: MqttSection,
        topics: Topics,
        outbox: Outbox,
        *,
        client_id: str,
        birth: Callable[[], dict[str, Any]],
        will: dict[str, Any],
        commands: CommandQueue | None = None,
        window: int = 100,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.outbox = outbox
        self.birth = birth
        self.commands = commands
        self.window = window
        self.hub_mode = settings.ack == "hub"
        self.conn = MqttConnection(settings, client_id, will=(topics.status, encode(will)), inflight=window)
        outbox.add_listener(self.wake)
        self.published = 0
        self.acked = 0
        self.hub_acks = 0
        self.rejected = 0
        self.resends = 0
        self._stopping = threading.Event()
        self._offline: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._pump, name="mqtt-pump", daemon=True)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.conn.start()
        self._thread.start()

    def wake(self) -> None:
        self.conn.inbox.put(Wake())

    def alive(self) -> bool:
        return self._thread.is_alive() and self.conn.alive()

    @property
    def connected(self) -> bool:
        return self.conn.connected

    def stop(self, offline: dict[str, Any] | None = None, timeout: float = 5.0) -> None:
        """Publish ``offline`` as the retained status (a clean stop sends no last will), then disconnect."""
        self._offline = offline
        self._stopping.set()
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.conn.stop(timeout)

    def publish_json(self, topic: str, payload: dict[str, Any], retain: bool = False) -> bool:
        """Health, replies: sent now if connected, otherwise dropped (they are not events)."""
        return self.conn.publish(topic, encode(payload), qos=1, retain=retain) is not None

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.conn.connected,
            "connects": self.conn.connects,
            "last_error": self.conn.last_error,
            "ack_mode": self.settings.ack,
            "published": self.published,
            "acked": self.acked,
            "hub_acks": self.hub_acks,
            "rejected": self.rejected,
            "resends": self.resends,
        }

    # --- the pump thread ---------------------------------------------------------------------

    def _pump(self) -> None:
        inflight: dict[int, tuple[int, str]] = {}
        awaiting: OrderedDict[str, float] = OrderedDict()
        cursor = 0
        resend_after = self.settings.hub_ack_timeout_s
        while not self._stopping.is_set():
            items = self._next_items()
            acked_rows: list[int] = []
            for item in items:
                if isinstance(item, Connected):
                    cursor = 0
                    awaiting.clear()
                    self._on_connected(item)
                elif isinstance(item, Disconnected):
                    logger.info("disconnected from the broker: %s", item.reason)
                elif isinstance(item, Published):
                    entry = inflight.pop(item.mid, None)
                    if entry is None:
                        continue
                    if not item.ok:
                        self.rejected += 1
                        logger.error("broker rejected event %s: %s (kept in the outbox)", entry[1], item.reason)
                    elif self.hub_mode:
                        awaiting[entry[1]] = time.monotonic()
                    else:
                        acked_rows.append(entry[0])
                elif isinstance(item, Message):
                    acked = self._route(item)
                    if acked:
                        resend_after = self.settings.hub_ack_timeout_s
                        for event_id in acked:
                            awaiting.pop(event_id, None)
            if acked_rows:
                self.outbox.ack_rows(acked_rows)
                self.acked += len(acked_rows)
            if self.conn.connected:
                cursor = self._fill(cursor, inflight)
            if awaiting and time.monotonic() - next(iter(awaiting.values())) > resend_after:
                logger.warning(
                    "hub has not acknowledged %d events for %.0f s; sending them again", len(awaiting), resend_after
                )
                self.resends += len(awaiting)
                cursor = 0
                awaiting.clear()
                resend_after = min(resend_after * 2, MAX_HUB_RESEND_S)
        if self._offline is not None and self.conn.connected:
            self.publish_json(self.topics.status, self._offline, retain=True)

    def _next_items(self) -> list[Incoming]:
        try:
            items = [self.conn.inbox.get(timeout=1.0)]
        except queue.Empty:
            return []
        while len(items) < 5000:
            try:
                items.append(self.conn.inbox.get_nowait())
            except queue.Empty:
                break
        return items

    def _on_connected(self, item: Connected) -> None:
        logger.info(
            "connected to %s:%d (MQTT %s); %d events waiting in the outbox",
            self.settings.host,
            self.settings.port,
            self.settings.protocol,
            self.outbox.rows,
        )
        subscriptions = [self.topics.command_filter]
        if self.hub_mode:
            subscriptions.append(self.topics.ack)
        self.conn.subscribe(subscriptions)
        self.publish_json(self.topics.status, self.birth(), retain=True)

    def _fill(self, cursor: int, inflight: dict[int, tuple[int, str]]) -> int:
        """Publish the next rows after ``cursor`` until the window is full; returns the new cursor."""
        while (room := self.window - len(inflight)) > 0:
            rows = self.outbox.fetch(cursor, room)
            if not rows:
                break
            busy = {row_id for row_id, _ in inflight.values()}
            for row in rows:
                if row.id in busy:
                    cursor = row.id
                    continue
                mid = self.conn.publish(row.topic, row.payload, qos=1)
                if mid is None:
                    return cursor
                cursor = row.id
                inflight[mid] = (row.id, row.event_id)
                self.published += 1
        return cursor

    def _route(self, message: Message) -> list[str]:
        """Hub acknowledgements go to the outbox, commands to the daemon; returns the event ids acknowledged."""
        parsed = parse_topic(self.topics.prefix, message.topic)
        if parsed is None or parsed.store_id != self.topics.store_id or parsed.terminal_id != self.topics.terminal_id:
            return []
        if parsed.kind == ACK:
            ids = parse_ack(message.payload)
            if ids is None:
                logger.warning("ignoring a malformed hub acknowledgement on %s", message.topic)
                return []
            self.outbox.ack_events(ids)
            self.hub_acks += len(ids)
            return ids
        if parsed.kind == CMD and parsed.name and self.commands is not None:
            self.commands.put((parsed.name, message.payload))
        return []


def parse_ack(payload: bytes) -> list[str] | None:
    """``{"event_ids": [...]}`` from the hub; ``None`` when it is not that."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    ids = data.get("event_ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return ids
