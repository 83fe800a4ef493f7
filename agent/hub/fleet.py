"""The hub's fleet coordinator: store-wide members and erasures with proof (``store-agent hub fleet run``).

One process per chain (it is the only writer of the retained member states, so versions never go back). It
holds a persistent MQTT session on the chain broker, so what terminals announce while it is down waits for it:

- ``<prefix>/+/+/events/member.enrolled`` and ``member.erased``, each checked against the announcing
  terminal's MAC (the registry of terminal keys) before anything is taken from it;
- it publishes, signed with the hub key and retained, each changed member state on
  ``<prefix>/<store>/_members/<member_ref>`` and the store's manifest on ``<prefix>/<store>/_members/manifest``;
- for every erasure it sends a signed ``erase-member`` (``scope: terminal``) to each terminal of the store that
  has not confirmed, every ``retry_s`` until it does; a reply counts only with a valid MAC of that terminal.

It does not acknowledge events: the hub's consumers (``hub serve``) store and acknowledge every event, these
included; the coordinator reads its own copy. See agent.hub.fleet_store for the merge rules.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.backoff import Backoff
from agent.config.schema import MqttSection
from agent.delivery.client import Connected, Message, MqttConnection, Published
from agent.delivery.monitor import HUB_RECONNECT_CAP_S
from agent.delivery.topics import EVENTS, REPLY, Topics, parse_topic
from agent.events import compact_json
from agent.hub.fleet_store import DueCommand, FleetError, FleetStore
from agent.identity.sync import member_ref
from agent.trust.keys import HubPrivateKey
from agent.trust.messages import HubVerifier, TerminalRegistry, Verdict, sign, signed_command

logger = logging.getLogger(__name__)

MEMBERS = "_members"
MANIFEST = "manifest"
ENROLLED, ERASED = "member.enrolled", "member.erased"
ERASE_COMMAND = "erase-member"
#: An announcement larger than this is not read (a terminal's bundle of a few dozen templates is ~100 kB).
MAX_ANNOUNCEMENT_BYTES = 1024 * 1024
_REF = re.compile(r"^[0-9a-f]{32}$")


def members_topic(prefix: str, store_id: str, name: str) -> str:
    return f"{prefix}/{store_id}/{MEMBERS}/{name}"


@dataclass
class FleetStats:
    enrolled: int = 0
    erased: int = 0
    stale: int = 0
    refused: int = 0
    published: int = 0
    commands: int = 0
    confirmations: int = 0


class FleetCoordinator:
    def __init__(
        self,
        settings: MqttSection,
        store: FleetStore,
        hub_key: HubPrivateKey,
        registry: TerminalRegistry,
        *,
        client_id: str = "store-agent-fleet",
        retry_s: float = 30.0,
        command_ttl_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix
        self.store = store
        self.hub_key = hub_key
        self.registry = registry
        self.verifier = HubVerifier([hub_key], registry)
        self.retry_s = retry_s
        self.command_ttl_s = command_ttl_s
        self.stats = FleetStats()
        reconnect = Backoff(initial_s=0.5, cap_s=HUB_RECONNECT_CAP_S)
        self.conn = MqttConnection(settings, client_id, persistent_session=True, backoff=reconnect)
        self._inflight: dict[int, tuple[str, str, int]] = {}  # mid -> (store, member_ref or manifest, version)
        self._requests: dict[str, tuple[str, str, str]] = {}  # request_id -> (store, member_ref, terminal)
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)

    def terminals(self, store_id: str) -> list[str]:
        """The store's terminals as the hub knows them (its registry of terminal keys)."""
        return sorted(t for s, t in self.registry.keys if s == store_id)

    def start(self) -> FleetCoordinator:
        self.conn.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.stop()

    def __enter__(self) -> FleetCoordinator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the loop ----------------------------------------------------------------------------------

    def _run(self) -> None:
        next_due = 0.0
        while not self._stop.is_set():
            try:
                item = self.conn.inbox.get(timeout=0.2)
            except queue.Empty:
                item = None
            try:
                if isinstance(item, Connected):
                    self._connected()
                elif isinstance(item, Message):
                    self._handle(item)
                elif isinstance(item, Published):
                    self._published(item)
                if self.conn.connected and self.subscribed.is_set():
                    self._publish_changes()
                    if time.monotonic() >= next_due:
                        next_due = time.monotonic() + min(1.0, self.retry_s / 2)
                        self._send_due()
            except Exception:  # one bad message or a database hiccup must not stop the coordinator
                logger.exception("fleet coordinator: step failed (continuing)")

    def _connected(self) -> None:
        self._inflight.clear()
        base = f"{self.prefix}/+/+"
        self.conn.subscribe(
            [f"{base}/{EVENTS}/{ENROLLED}", f"{base}/{EVENTS}/{ERASED}", f"{base}/cmd/{ERASE_COMMAND}/{REPLY}"]
        )
        self.subscribed.set()
        logger.info("fleet coordinator subscribed under %s/", self.prefix)

    def _handle(self, message: Message) -> None:
        parsed = parse_topic(self.prefix, message.topic)
        if parsed is None or len(message.payload) > MAX_ANNOUNCEMENT_BYTES:
            return
        verdict = self.verifier.verify(message.topic, parsed.store_id, parsed.terminal_id, message.payload)
        if verdict is not Verdict.VERIFIED:
            self.stats.refused += 1
            logger.warning("%s on %s: not taken (%s)", parsed.kind, message.topic, verdict.value)
            return
        try:
            payload = json.loads(message.payload)
            if not isinstance(payload, dict):
                raise FleetError("not a JSON object")
            if parsed.kind == REPLY:
                self._reply(parsed.store_id, parsed.terminal_id, payload)
            elif parsed.kind == EVENTS and self.store.first_sight(str(payload["event_id"])):
                self._announcement(parsed.store_id, parsed.terminal_id, str(parsed.name), payload)
        except (FleetError, KeyError, TypeError, ValueError) as exc:
            self.stats.refused += 1
            logger.warning("%s from %s/%s refused: %s", parsed.name, parsed.store_id, parsed.terminal_id, exc)

    def _announcement(self, store_id: str, terminal: str, kind: str, payload: dict[str, Any]) -> None:
        ref = str(payload["member_ref"])
        if not _REF.match(ref):
            raise FleetError("member_ref must be 32 hex digits")
        captured = datetime.fromisoformat(str(payload["captured_at"]).replace("Z", "+00:00")).timestamp()
        if kind == ENROLLED:
            member_id = str(payload["member_id"])
            if member_ref(store_id, member_id) != ref:
                raise FleetError("member_ref does not belong to member_id in this store")
            version = self.store.enrolled(
                store_id,
                terminal,
                member_id,
                ref,
                dict(payload["consent"]),
                str(payload["model"]),
                list(payload["templates"]),
                captured,
            )
            if version is None:
                self.stats.stale += 1
                logger.info("enrolment from %s/%s captured before the member's erasure: ignored", store_id, terminal)
            else:
                self.stats.enrolled += 1
        elif kind == ERASED:
            self.store.erased(
                store_id, ref, terminal, str(payload.get("reason", "")), captured, self.terminals(store_id)
            )
            self.stats.erased += 1
            logger.info("erasure announced by %s/%s: every terminal of the store will confirm", store_id, terminal)

    def _reply(self, store_id: str, terminal: str, payload: dict[str, Any]) -> None:
        waiting = self._requests.pop(str(payload.get("request_id")), None)
        if waiting is None or waiting[0] != store_id or waiting[2] != terminal:
            return
        _, ref, _ = waiting
        if payload.get("ok") and payload.get("result", {}).get("member_ref") == ref:
            self.store.confirm(store_id, ref, terminal, "erase-member confirmed")
            self.stats.confirmations += 1
        else:
            self.store.note_failure(store_id, ref, terminal, str(payload.get("error", "refused"))[:200])

    # --- publishing ----------------------------------------------------------------------------------

    def _publish_changes(self) -> None:
        changed_stores = set()
        pending = {(s, r) for s, r, _ in self._inflight.values()}
        for store_id, ref, version in self.store.unpublished():
            if (store_id, ref) in pending:
                continue
            state = self.store.state(store_id, ref)
            if state is None:
                continue
            self._publish(store_id, ref, state, version)
            changed_stores.add(store_id)
        for store_id in changed_stores:
            manifest = self.store.manifest(store_id)
            self._publish(store_id, MANIFEST, manifest, int(manifest["version"]))

    def _publish(self, store_id: str, name: str, body: dict[str, Any], version: int) -> None:
        topic = members_topic(self.prefix, store_id, name)
        data = sign(self.hub_key, topic, compact_json(body).encode())
        mid = self.conn.publish(topic, data, qos=1, retain=True)
        if mid is not None:
            self._inflight[mid] = (store_id, name, version)

    def _published(self, item: Published) -> None:
        done = self._inflight.pop(item.mid, None)
        if done is None:
            return
        store_id, name, version = done
        if not item.ok:
            logger.warning("broker refused the member state %s/%s: %s", store_id, name, item.reason)
        elif name != MANIFEST:
            self.store.mark_published(store_id, name, version)
            self.stats.published += 1

    # --- erasure commands -----------------------------------------------------------------------------

    def _send_due(self) -> None:
        for due in self.store.due(self.retry_s):
            self._command(due)

    def _command(self, due: DueCommand) -> None:
        if (due.store_id, due.terminal_id) not in self.registry.keys:
            self.store.note_failure(due.store_id, due.member_ref, due.terminal_id, "no longer registered at the hub")
            return
        request_id = secrets.token_hex(8)
        topic = f"{Topics(self.prefix, due.store_id, due.terminal_id).base}/cmd/{ERASE_COMMAND}"
        request = {"request_id": request_id, "member_ref": due.member_ref, "scope": "terminal"}
        if self.conn.publish(topic, signed_command(self.hub_key, topic, request, self.command_ttl_s)) is not None:
            self._requests[request_id] = (due.store_id, due.member_ref, due.terminal_id)
            self.stats.commands += 1
            if due.attempts > 1:
                logger.info("erase-member to %s/%s again (attempt %d)", due.store_id, due.terminal_id, due.attempts)
