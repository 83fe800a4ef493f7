"""One hub consumer: a share of every store's events, verified, stored once, then acknowledged.

Several consumer processes subscribe to ``$share/<group>/<prefix>/+/+/events/+`` on the chain broker (MQTT 5
shared subscriptions), so the broker hands each event to one of them. Each is the hub ``Monitor`` (the one place
that checks terminals' MACs and signs acks) over every store, with a persistent session, and with a
``before_ack`` step that commits the batch to the shared event store: an event is acknowledged only once it is
on disk at the hub. A consumer that dies loses nothing: what it held unacknowledged is sent again by its terminal
(``hub_ack_timeout_s``) and reaches a live consumer; what it had stored and not yet acknowledged is stored again
as a duplicate that ``INSERT OR IGNORE`` drops, and acknowledged then.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config.schema import MqttSection
from agent.delivery.monitor import Monitor
from agent.events import compact_json
from agent.hub.store import EVENTS_FILE, EventStore, StoredEvent
from agent.trust.keys import HubPrivateKey
from agent.trust.messages import TerminalRegistry, Verdict

logger = logging.getLogger(__name__)

DEFAULT_GROUP = "hub"


@dataclass
class ConsumerStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


class Consumer:
    """A shared-subscription consumer writing to ``store`` (its own connection to the shared file)."""

    def __init__(
        self,
        settings: MqttSection,
        hub_key: HubPrivateKey,
        registry: TerminalRegistry,
        store: EventStore,
        *,
        group: str = DEFAULT_GROUP,
        client_id: str,
    ) -> None:
        self.store = store
        self.stats = ConsumerStats()
        self._batch: list[StoredEvent] = []
        self._lock = threading.Lock()
        self.monitor = Monitor(
            settings,
            "+",
            client_id=client_id,
            ack=True,
            on_event=self._on_event,
            on_rejected=self._on_rejected,
            hub_key=hub_key,
            registry=registry,
            share_group=group,
            status=False,
            before_ack=self._commit,
        )

    def start(self) -> Consumer:
        self.monitor.start()
        return self

    def stop(self) -> None:
        self.monitor.stop()

    @property
    def subscribed(self) -> threading.Event:
        return self.monitor.subscribed

    def _on_event(self, terminal: str, payload: dict[str, Any], duplicate: bool) -> None:
        seq = payload.get("seq")
        self._batch.append(
            StoredEvent(
                str(payload["event_id"]),
                str(payload.get("store_id", "")),
                terminal,
                str(payload.get("type", "")),
                seq if isinstance(seq, int) else None,
                compact_json(payload),
            )
        )
        self.stats.received += 1

    def _on_rejected(self, terminal: str, kind: str, payload: dict[str, Any], verdict: Verdict) -> None:
        self.stats.rejected[verdict.value] = self.stats.rejected.get(verdict.value, 0) + 1

    def _commit(self) -> None:
        """Before the acks go out (in the connection's thread): the batch is committed, or nothing is acked."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        added = self.store.add(batch)
        self.stats.stored += added
        self.stats.duplicates += len(batch) - added


def consumer_client_id(base: str, index: int) -> str:
    """Process ``index``'s client id (and, on a chain broker that binds ids to accounts, its account)."""
    return f"{base}-{index}"


def store_path(state_dir: Path) -> Path:
    """The event store every consumer of ``state_dir`` shares."""
    return state_dir / EVENTS_FILE
