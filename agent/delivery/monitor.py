"""The hub side in miniature: a persistent subscriber that de-duplicates events and acknowledges them.

Used by ``store-agent monitor`` (the operator's tool), the demo, the tests and
the benchmark. Its MQTT session is persistent (MQTT 5 with a session expiry),
so events published while it is away wait at the broker. With ``ack=True``
it publishes ``{"event_ids": [...]}`` to each terminal's ``ack`` topic after
the events were handed to ``on_event`` (``ack: hub`` mode). Messages are handled
in the connection's network thread (``service``), so ``on_event`` should be quick.

With the hub's key (``hub_key``) it checks every terminal message's MAC against
the terminal's registered (or, with ``tofu``, first-seen) key: only verified
events are de-duplicated, handed to ``on_event`` and acknowledged (acks signed
with the hub key); anything else goes to ``on_rejected`` with the verdict, so a
forged event can neither be shown as real nor shadow a real one with its id.

The hub's consumers (``agent.hub.consumer``) are monitors of every store (``store_id='+'``) in an MQTT 5 shared
subscription group (``share_group``) that store each batch (``before_ack``) before acknowledging it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from agent.backoff import Backoff
from agent.config.schema import MqttSection
from agent.delivery.client import Connected, Message, MqttConnection
from agent.delivery.topics import EVENTS, HEALTH, STATUS, Topics, parse_topic
from agent.events import compact_json
from agent.trust.keys import HubPrivateKey, TrustKeyError
from agent.trust.messages import HubVerifier, TerminalRegistry, Verdict, signed_ack

logger = logging.getLogger(__name__)

SEEN_LIMIT = 1_000_000
#: The hub reconnects to its broker within this many seconds once it is back (a terminal backs off to 30 s; the
#: hub is one client per process, and a chain broker back from an outage should see its consumers at once).
HUB_RECONNECT_CAP_S = 4.0
ACK_BATCH = 500
ACK_INTERVAL_S = 0.05

#: on_event(terminal_id, payload, duplicate)
EventHandler = Callable[[str, dict[str, Any], bool], None]
#: on_status(terminal_id, kind ('status' or 'health'), payload)
StatusHandler = Callable[[str, str, dict[str, Any]], None]
#: on_rejected(terminal_id, kind, payload, verdict): a message that failed its MAC check
RejectedHandler = Callable[[str, str, dict[str, Any], Verdict], None]


class Monitor:
    def __init__(
        self,
        settings: MqttSection,
        store_id: str,
        terminal_id: str | None = None,
        *,
        client_id: str,
        ack: bool,
        on_event: EventHandler,
        on_status: StatusHandler | None = None,
        health: bool = False,
        hub_key: HubPrivateKey | None = None,
        registry: TerminalRegistry | None = None,
        tofu: bool = False,
        on_rejected: RejectedHandler | None = None,
        share_group: str | None = None,
        status: bool = True,
        before_ack: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, store_id, terminal_id or "+")
        self.ack = ack
        self.on_event = on_event
        self.on_status = on_status
        self.on_rejected = on_rejected
        self.health = health
        self.hub_key = hub_key
        self.registry = registry or TerminalRegistry()
        self.tofu = tofu
        self.share_group = share_group
        self.status = status
        self.before_ack = before_ack
        self.verifier = HubVerifier([hub_key], self.registry) if hub_key is not None else None
        self.rejected: dict[str, int] = {}
        self.conn = MqttConnection(
            settings,
            client_id,
            persistent_session=True,
            service=self._service,
            poll_s=ACK_INTERVAL_S,
            backoff=Backoff(initial_s=0.5, cap_s=HUB_RECONNECT_CAP_S),
        )
        self.received = 0
        self.duplicates = 0
        self.malformed = 0
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.subscribed = threading.Event()
        self._pending_acks: dict[tuple[str, str], list[str]] = {}
        self._next_ack = 0.0
        self._final_acks = threading.Event()
        self._acks_sent = threading.Event()
        #: The newest audit head each terminal published (seq, MAC prefix), and what looked wrong about one.
        self.audit_heads: dict[str, tuple[int, str]] = {}
        self.audit_alarms: list[str] = []

    @property
    def unique(self) -> int:
        return len(self.seen)

    def start(self) -> Monitor:
        self.conn.start()
        return self

    def stop(self) -> None:
        """Send the acknowledgements still owed (from the network thread that owns them), then disconnect."""
        self._final_acks.set()
        if self.conn.connected and self.conn.alive():
            self.conn.wake()
            self._acks_sent.wait(2.0)
        self.conn.stop()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _service(self) -> None:
        """In the network thread: handle what arrived, acknowledge in batches every ACK_INTERVAL_S."""
        inbox = self.conn.inbox
        while not inbox.empty():
            item = inbox.get_nowait()
            if isinstance(item, Message):
                self._handle(item)
            elif isinstance(item, Connected):
                self._subscribe(item.session_present)
        if self._final_acks.is_set():
            self._send_acks()
            self._acks_sent.set()
            return
        now = time.monotonic()
        if self._pending_acks and (now >= self._next_ack or sum(map(len, self._pending_acks.values())) >= ACK_BATCH):
            self._send_acks()
            self._next_ack = now + ACK_INTERVAL_S

    def _subscribe(self, session_present: bool) -> None:
        wanted = [self.topics.event("+")]
        if self.share_group is not None:
            wanted = [f"$share/{self.share_group}/{t}" for t in wanted]
        if self.status:
            wanted.append(self.topics.status)
        if self.health:
            wanted.append(self.topics.health)
        self.conn.subscribe(wanted)
        logger.info("monitor subscribed to %s (session %s)", self.topics.base, "resumed" if session_present else "new")
        self.subscribed.set()

    def _handle(self, message: Message) -> None:
        parsed = parse_topic(self.topics.prefix, message.topic)
        if parsed is None:
            return
        try:
            payload = json.loads(message.payload)
        except ValueError:
            self.malformed += 1
            logger.warning("not JSON on %s", message.topic)
            return
        if not isinstance(payload, dict):
            self.malformed += 1
            return
        if parsed.kind not in (STATUS, HEALTH, EVENTS):
            return
        if parsed.kind == STATUS:
            self._pin(parsed.store_id, parsed.terminal_id, payload)
        if self.verifier is not None:
            verdict = self.verifier.verify(message.topic, parsed.store_id, parsed.terminal_id, message.payload)
            if verdict is not Verdict.VERIFIED:
                self.rejected[verdict.value] = self.rejected.get(verdict.value, 0) + 1
                logger.warning("%s message on %s: %s", verdict.value, message.topic, "not shown as real, not acked")
                if self.on_rejected is not None:
                    self.on_rejected(parsed.terminal_id, parsed.kind, payload, verdict)
                return
        if parsed.kind in (STATUS, HEALTH):
            if parsed.kind == HEALTH:
                self._watch_audit(parsed.terminal_id, payload.get("audit"))
            if self.on_status is not None:
                self.on_status(parsed.terminal_id, parsed.kind, payload)
            return
        if parsed.kind != EVENTS:
            return
        event_id = payload.get("event_id")
        if not isinstance(event_id, str):
            self.malformed += 1
            return
        self.received += 1
        duplicate = event_id in self.seen
        if duplicate:
            self.duplicates += 1
        else:
            self.seen[event_id] = None
            if len(self.seen) > SEEN_LIMIT:
                self.seen.popitem(last=False)
        self.on_event(parsed.terminal_id, payload, duplicate)
        if self.ack:
            self._pending_acks.setdefault((parsed.store_id, parsed.terminal_id), []).append(event_id)

    def _watch_audit(self, terminal: str, audit: object) -> None:
        """A terminal's audit chain as its health reports it: broken, or shorter than it was (entries deleted,
        which a chain re-verified on the terminal alone cannot show), or rewritten (same length, another MAC)."""
        if not isinstance(audit, dict) or not isinstance(audit.get("head_seq"), int):
            return
        seq, mac = int(audit["head_seq"]), str(audit.get("head_mac", ""))
        alarm = None
        if audit.get("ok") is False:
            alarm = f"audit chain of terminal {terminal} is broken: {audit.get('error')}"
        known = self.audit_heads.get(terminal)
        if known is not None and seq < known[0]:
            alarm = f"audit chain of terminal {terminal} went back from entry {known[0]} to {seq}: entries were deleted"
        elif known is not None and seq == known[0] and mac != known[1]:
            alarm = f"audit chain of terminal {terminal} was rewritten: entry {seq} has another MAC"
        if alarm is not None:
            if alarm not in self.audit_alarms:
                self.audit_alarms.append(alarm)
                logger.error("%s", alarm)
            return
        if known is None or seq > known[0]:
            self.audit_heads[terminal] = (seq, mac)

    def _pin(self, store: str, terminal: str, status: dict[str, Any]) -> None:
        """Trust on first use: remember a terminal's key from its first status (``tofu``), never replace it."""
        line = status.get("terminal_key")
        if not self.tofu or not isinstance(line, str) or (store, terminal) in self.registry.keys:
            return
        try:
            self.registry.add(store, terminal, line)
        except TrustKeyError as exc:
            logger.warning("terminal %s/%s announced an unusable key: %s", store, terminal, exc)
            return
        logger.warning(
            "pinned the key of terminal %s/%s on first sight (check it: store-agent keys show)", store, terminal
        )

    def _send_acks(self) -> None:
        if self.before_ack is not None and self._pending_acks:
            try:
                self.before_ack()
            except Exception:
                # Not stored, so not acknowledged: each terminal sends these events again (hub_ack_timeout_s).
                logger.exception(
                    "storing %d events failed; not acknowledged", sum(map(len, self._pending_acks.values()))
                )
                self._pending_acks.clear()
                return
        for (store, terminal), ids in list(self._pending_acks.items()):
            if not ids:
                continue
            topic = Topics(self.topics.prefix, store, terminal).ack
            if self.hub_key is not None:
                body = signed_ack(self.hub_key, topic, ids)
            else:
                body = compact_json({"event_ids": ids}).encode()
            if self.conn.publish(topic, body, qos=1) is not None:
                del self._pending_acks[(store, terminal)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
