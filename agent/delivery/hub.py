"""The hub's side of commands: sign a request, publish it to a terminal, wait for its reply and check its MAC.

Used by ``store-agent hub send`` and by anything else on the hub that commands terminals. One connection can
carry many requests; replies are matched by ``request_id``.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from agent.config.schema import MqttSection
from agent.delivery.client import Connected, Message, MqttConnection
from agent.delivery.topics import REPLY, Topics, parse_topic
from agent.trust.keys import HubPrivateKey
from agent.trust.messages import HubVerifier, TerminalRegistry, Verdict, signed_command

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """A terminal's reply and whether its MAC proved it came from that terminal."""

    payload: dict[str, Any]
    verdict: Verdict

    @property
    def ok(self) -> bool:
        return bool(self.payload.get("ok")) and self.verdict is Verdict.VERIFIED


class HubClient:
    def __init__(
        self,
        settings: MqttSection,
        store_id: str,
        hub_key: HubPrivateKey,
        registry: TerminalRegistry,
        client_id: str | None = None,
    ) -> None:
        self.topics = Topics(settings.topic_prefix, store_id, "+")
        self.hub_key = hub_key
        self.verifier = HubVerifier([hub_key], registry)
        self.conn = MqttConnection(settings, client_id or f"store-agent-hub-{secrets.token_hex(4)}")
        self._replies: dict[str, queue.Queue[Reply]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._reader = threading.Thread(target=self._read, name="hub-replies", daemon=True)

    def __enter__(self) -> HubClient:
        self.conn.start()
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.conn.stop()
        self._reader.join(2)

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                item = self.conn.inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, Connected):
                self.conn.subscribe([f"{self.topics.base}/cmd/+/{REPLY}"])
                self._subscribed.set()
            elif isinstance(item, Message):
                self._reply(item)

    def _reply(self, message: Message) -> None:
        parsed = parse_topic(self.topics.prefix, message.topic)
        if parsed is None or parsed.kind != REPLY:
            return
        try:
            payload = json.loads(message.payload)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        verdict = self.verifier.verify(message.topic, parsed.store_id, parsed.terminal_id, message.payload)
        with self._lock:
            waiting = self._replies.get(f"{parsed.terminal_id}/{payload.get('request_id')}")
        if waiting is not None:
            waiting.put(Reply(payload, verdict))

    def request(
        self, terminal: str, command: str, args: dict[str, Any], *, ttl_s: float = 60.0, timeout_s: float = 30.0
    ) -> Reply | None:
        """Send one signed command and wait for the terminal's reply (None when none came in time)."""
        deadline = time.monotonic() + timeout_s
        if not self.conn.wait_connected(timeout_s) or not self._subscribed.wait(max(0.0, deadline - time.monotonic())):
            return None
        # No wait for the SUBACK: the broker handles our SUBSCRIBE before our PUBLISH, so before any reply.
        request_id = secrets.token_hex(8)
        key = f"{terminal}/{request_id}"
        waiting: queue.Queue[Reply] = queue.Queue()
        with self._lock:
            self._replies[key] = waiting
        topic = f"{self.topics.with_terminal(terminal).base}/cmd/{command}"
        try:
            body = signed_command(self.hub_key, topic, {"request_id": request_id, **args}, ttl_s)
            if self.conn.publish(topic, body, qos=1) is None:
                return None
            return waiting.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        finally:
            with self._lock:
                self._replies.pop(key, None)
