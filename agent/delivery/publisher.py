"""Moves events from the outbox to the broker in order, and routes what the hub sends back.

The sending side runs in the connection's network thread (``service``, called
after every socket read): it publishes committed rows in outbox order, fetched
from SQLite ``FETCH_BATCH`` at a time with their encoded payloads, with at most
``window`` QoS 1 messages in flight, and after every
(re)connect starts again from the oldest unacknowledged row (events that paho
still holds in flight are left to paho's own resend). With ``ack: broker`` a
row is deleted when its PUBACK arrives; with ``ack: hub`` a PUBACK only frees
the window and the row is deleted when the hub acknowledges the event id on
``<terminal>/ack`` (a PUBACK is a hop, not delivery: a broker that crashes
before the hub reads the message would otherwise lose it). Rows the hub has not
acknowledged within ``hub_ack_timeout_s`` are sent again, with the timeout
doubling while the hub stays silent.

A PUBACK whose reason is not 0 means not delivered, in both modes: 0x10 "No
matching subscribers" (nobody was listening: a hub that is down and has no
persistent session) or a refusal (>= 0x80). The row stays; its topic is held
and probed with one event at a time, with backoff (``agent.delivery.holds``),
and ``health.mqtt`` says ``no subscriber`` until a probe is delivered. Over MQTT
3.1.1 a PUBACK carries no reason, so this cannot be seen there.

Trust (``agent.trust``): everything published carries the terminal's MAC, added
here as the message leaves (so the outbox keeps plain payloads that erasure and
redaction may rewrite), and a hub ack deletes events only when it is signed by a
trusted hub key; anything else is counted and ignored.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.config.schema import MqttSection
from agent.delivery.client import Connected, Disconnected, Message, MqttConnection, Published
from agent.delivery.holds import NO_MATCHING_SUBSCRIBERS, TopicHolds
from agent.delivery.outbox import Outbox, Row
from agent.delivery.topics import ACK, CMD, Topics, parse_topic
from agent.events import compact_json
from agent.trust.keys import HubPublicKey
from agent.trust.messages import AckCheck, check_hub_signature

logger = logging.getLogger(__name__)

MAX_HUB_RESEND_S = 600.0
#: Rows read from the outbox per SELECT (kept in memory, ready to publish).
FETCH_BATCH = 1000
#: Rows of held topics skipped per turn of the network thread.
SKIP_BUDGET = 5000


@dataclass(frozen=True)
class CommandRequest:
    """A command as it arrived: its name, its topic, the raw payload, and whether the broker retained it."""

    name: str
    topic: str
    payload: bytes
    retained: bool = False


#: Requests handed to the daemon's command thread; bounded (``COMMAND_QUEUE``), so a flood cannot grow memory.
CommandQueue = queue.Queue[CommandRequest]
COMMAND_QUEUE = 16
#: Seals a payload for its topic (the terminal's MAC); the identity when the terminal has no hub key.
Sealer = Callable[[str, bytes], bytes]


def encode(payload: dict[str, Any]) -> bytes:
    return compact_json(payload).encode()


class Publisher:
    """Owns the event connection: outbox rows out, PUBACKs and hub acks back, commands to the daemon."""

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
        sealer: Sealer | None = None,
        hub_keys: Sequence[HubPublicKey] = (),
        subscriptions: Sequence[str] = (),
        on_message: Callable[[str, bytes], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.outbox = outbox
        self.birth = birth
        self.commands = commands
        self.window = window
        self.hub_mode = settings.ack == "hub"
        self.seal: Sealer = sealer or (lambda topic, body: body)
        self.hub_keys = {key.kid: key for key in hub_keys}
        #: Other topics this terminal reads (store-wide member states), and who takes their messages.
        self.extra_subscriptions = list(subscriptions)
        self.on_message = on_message
        self.conn = MqttConnection(
            settings,
            client_id,
            will=(topics.status, self.seal(topics.status, encode(will))),
            inflight=window,
            service=self._service,
        )
        outbox.add_listener(self.wake)
        self.published = 0
        self.acked = 0
        self.hub_acks = 0
        self.rejected = 0
        self.resends = 0
        self.no_subscriber = 0
        self.refused_acks: dict[str, int] = {}
        self.commands_dropped = 0
        self._stopping = threading.Event()
        # State of the sending side; touched only in the network thread.
        self._inflight: dict[int, tuple[int, str, str]] = {}
        self._inflight_rows: set[int] = set()
        self._awaiting: OrderedDict[str, float] = OrderedDict()
        self._ready: deque[Row] = deque()
        self._cursor = 0
        #: ``outbox.commits`` when a fetch past the cursor came back empty: nothing new until the next commit.
        self._drained_at: int | None = None
        self._erasures = outbox.erasures
        self._resend_after = settings.hub_ack_timeout_s
        self.holds = TopicHolds()
        #: Direct publishes (``send_direct``): message id -> PUBACK reason code, None while unanswered.
        self._direct: dict[int, int | None] = {}

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.conn.start()

    def wake(self) -> None:
        """New rows are committed (called by the outbox's committer once per commit)."""
        self.conn.wake()

    def alive(self) -> bool:
        return self.conn.alive()

    @property
    def connected(self) -> bool:
        return self.conn.connected

    def stop(self, offline: dict[str, Any] | None = None, timeout: float = 5.0) -> None:
        """Publish ``offline`` as the retained status (a clean stop sends no last will), then disconnect."""
        self._stopping.set()
        if offline is not None and self.conn.connected:
            self.publish_json(self.topics.status, offline, retain=True)
        self.conn.stop(timeout)

    def publish_json(self, topic: str, payload: dict[str, Any], retain: bool = False) -> bool:
        """Health, replies: sent now if connected, otherwise dropped (they are not events)."""
        return self.conn.publish(topic, self.seal(topic, encode(payload)), qos=1, retain=retain) is not None

    def send_direct(self, messages: list[tuple[str, bytes]], timeout: float) -> list[bool]:
        """Publish ``(topic, payload)`` now, outside the outbox (events a failing disk never took, at a stop);
        per message, whether the broker confirmed it with reason 0 within ``timeout``."""
        mids = []
        for topic, payload in messages:
            mid = self.conn.publish(topic, self.seal(topic, payload), qos=1)
            if mid is not None:
                self._direct[mid] = None
            mids.append(mid)
        deadline = time.monotonic() + timeout
        while any(self._direct.get(m) is None for m in mids if m is not None) and time.monotonic() < deadline:
            time.sleep(0.02)
        confirmed = [m is not None and self._direct.get(m) == 0 for m in mids]
        for m in mids:
            if m is not None:
                self._direct.pop(m, None)
        return confirmed

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
            "no_subscriber": self.no_subscriber,
            "delivery": self.delivery_state(),
            "held_topics": self.holds.snapshot(time.monotonic()),
            "refused_acks": dict(self.refused_acks),
            "commands_dropped": self.commands_dropped,
            "client_id_takeovers": self.conn.takeovers,
        }

    def delivery_state(self) -> str:
        """``ok``, ``disconnected``, ``no subscriber`` (PUBACK 0x10 on some topic) or ``refused: <reason>``."""
        if not self.conn.connected:
            return "disconnected"
        return self.holds.state() or "ok"

    # --- the sending side, in the network thread -------------------------------------------

    def _service(self) -> None:
        """Handle what the network delivered, then fill the in-flight window from the outbox."""
        if self._stopping.is_set():
            return
        acked_rows: list[int] = []
        inbox = self.conn.inbox
        while not inbox.empty():
            item = inbox.get_nowait()
            if isinstance(item, Published):
                entry = self._inflight.pop(item.mid, None)
                if entry is None:
                    if item.mid in self._direct:
                        self._direct[item.mid] = item.code
                    continue
                self._inflight_rows.discard(entry[0])
                if item.code != 0:
                    self._undelivered(entry, item)
                    continue
                if self.holds:
                    self._released(entry)
                if self.hub_mode:
                    self._awaiting[entry[1]] = time.monotonic()
                else:
                    acked_rows.append(entry[0])
            elif isinstance(item, Connected):
                self._restart()
                self._on_connected(item)
            elif isinstance(item, Disconnected):
                logger.info("disconnected from the broker: %s", item.reason)
            elif isinstance(item, Message):
                acked = self._route(item)
                if acked:
                    self._resend_after = self.settings.hub_ack_timeout_s
                    for event_id in acked:
                        self._awaiting.pop(event_id, None)
        if acked_rows:
            self.outbox.ack_rows(acked_rows)
            self.acked += len(acked_rows)
        if self.conn.connected:
            self._fill()
        awaiting = self._awaiting
        if awaiting and time.monotonic() - next(iter(awaiting.values())) > self._resend_after:
            logger.warning(
                "hub has not acknowledged %d events for %.0f s; sending them again", len(awaiting), self._resend_after
            )
            self.resends += len(awaiting)
            self._restart()
            self._resend_after = min(self._resend_after * 2, MAX_HUB_RESEND_S)

    def _undelivered(self, entry: tuple[int, str, str], item: Published) -> None:
        """Not delivered (0x10, or refused): the row stays in the outbox and its topic is held."""
        if item.code == NO_MATCHING_SUBSCRIBERS:
            self.no_subscriber += 1
        else:
            self.rejected += 1
        hold = self.holds.undelivered(entry[2], item.code, item.reason, time.monotonic())
        if hold is not None:
            logger.warning(
                "%s: %s (event %s not delivered, kept in the outbox); sending on this topic waits, then tries "
                "one event at a time",
                entry[2],
                hold.reason,
                entry[1],
            )

    def _released(self, entry: tuple[int, str, str]) -> None:
        """Reason 0 on a held topic: send its skipped rows again, in order."""
        now = time.monotonic()
        hold = self.holds.delivered(entry[2], now)
        if hold is None:
            return
        logger.info(
            "%s: delivered again after %.1f s (%s, %d events not delivered meanwhile)",
            entry[2],
            now - hold.since,
            hold.reason,
            hold.undelivered,
        )
        start = min(entry[0], hold.skipped_from if hold.skipped_from is not None else entry[0])
        if start <= self._cursor:
            self._cursor = start - 1
            self._ready.clear()
            self._drained_at = None

    def _probe(self) -> bool:
        """One event, the oldest of each held topic whose wait is over; ``False`` if publishing failed."""
        now = time.monotonic()
        for topic in self.holds.due(now):
            row = self.outbox.first_of_topic(topic)
            if row is None:
                self.holds.forget(topic, now)
                continue
            if row.id not in self._inflight_rows:
                mid = self.conn.publish(row.topic, self.seal(row.topic, row.payload), qos=1)
                if mid is None:
                    return False
                self._inflight[mid] = (row.id, row.event_id, row.topic)
                self._inflight_rows.add(row.id)
                self.published += 1
            self.holds.probing(topic, row.id, now)
        return True

    def _restart(self) -> None:
        """Send again from the oldest unacknowledged row (after a reconnect, or when the hub stays silent)."""
        self._cursor = 0
        self._drained_at = None
        self._ready.clear()
        self._awaiting.clear()

    def _on_connected(self, item: Connected) -> None:
        logger.info(
            "connected to %s:%d (MQTT %s); %d events waiting in the outbox",
            self.settings.host,
            self.settings.port,
            self.settings.protocol,
            self.outbox.rows,
        )
        subscriptions = [self.topics.command_filter, *self.extra_subscriptions]
        if self.hub_mode:
            subscriptions.append(self.topics.ack)
        self.conn.subscribe(subscriptions)
        self.publish_json(self.topics.status, self.birth(), retain=True)

    def _fill(self) -> None:
        """Publish the next rows in outbox order until the in-flight window is full."""
        ready = self._ready
        if self.outbox.erasures != self._erasures:  # rows read before an erasure may be gone: read them again
            self._erasures = self.outbox.erasures
            ready.clear()
        holds = self.holds
        if holds and not self._probe():
            return
        skipped = 0
        while len(self._inflight) < self.window:
            if not ready:
                # Every PUBACK and poll lands here: skip the query while no commit happened since one found nothing.
                commits = self.outbox.commits  # read before fetching, so a commit in between is not missed
                if commits == self._drained_at:
                    return
                ready.extend(self.outbox.fetch(self._cursor, FETCH_BATCH))
                if not ready:
                    self._drained_at = commits
                    return
            row = ready[0]
            if holds and holds.held(row.topic, row.id):
                skipped += 1  # sent again once a probe on its topic is delivered
                if skipped > SKIP_BUDGET:  # a long held backlog is walked a slice per turn, keepalives in between
                    self.conn.wake()
                    return
            elif row.id not in self._inflight_rows and row.event_id not in self._awaiting:
                # (a row still in flight from before a reconnect is resent by paho; one awaiting the hub's ack by
                # the hub-ack timeout)
                mid = self.conn.publish(row.topic, self.seal(row.topic, row.payload), qos=1)
                if mid is None:
                    return
                self._inflight[mid] = (row.id, row.event_id, row.topic)
                self._inflight_rows.add(row.id)
                self.published += 1
            ready.popleft()
            self._cursor = row.id

    def _route(self, message: Message) -> list[str]:
        """Hub acknowledgements go to the outbox, commands to the daemon; returns the event ids acknowledged."""
        if self.on_message is not None and self.on_message(message.topic, message.payload):
            return []
        parsed = parse_topic(self.topics.prefix, message.topic)
        if parsed is None or parsed.store_id != self.topics.store_id or parsed.terminal_id != self.topics.terminal_id:
            return []
        if parsed.kind == ACK:
            check, body = check_hub_signature(self.hub_keys, message.topic, message.payload)
            ids = parse_ack(body) if check is AckCheck.OK else None
            if ids is None:
                reason = check.value if check is not AckCheck.OK else "malformed"
                self.refused_acks[reason] = self.refused_acks.get(reason, 0) + 1
                if sum(self.refused_acks.values()) <= 10 or logger.isEnabledFor(logging.DEBUG):
                    logger.warning(
                        "ignored an ack on %s (%s): only the hub's signed acks delete events", message.topic, reason
                    )
                return []
            self.outbox.ack_events(ids)
            self.hub_acks += len(ids)
            return ids
        if parsed.kind == CMD and parsed.name and self.commands is not None:
            request = CommandRequest(parsed.name, message.topic, message.payload, message.retained)
            try:
                self.commands.put_nowait(request)
            except queue.Full:
                self.commands_dropped += 1
                logger.warning("command %s dropped: %d requests are already waiting", parsed.name, COMMAND_QUEUE)
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
