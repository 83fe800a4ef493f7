"""Home Assistant MQTT discovery: the terminal shows up in Home Assistant as a device with its sensors.

Home Assistant's MQTT integration reads retained JSON configs from
``<discovery_prefix>/<component>/<node_id>/<object_id>/config`` and then follows the state topics they name.
This terminal announces (``integrations.home_assistant``):

- a connectivity ``binary_sensor`` on the retained ``status`` topic (online/offline, the last will included);
- an outbox-depth diagnostic ``sensor`` on the retained ``health`` topic;
- per zone of the people pipeline, a ``sensor`` of the people inside it, and per queue zone one of the queue
  length, on retained state topics ``<topic base>/ha/zone/<camera>/<zone>`` and ``.../ha/queue/<camera>/<zone>``
  (events are per type, not per zone, and not retained: a sensor needs the latest value at any time);
- only when ``member_sensor`` is on, the last identified member (``.../ha/member``), cleared when that member
  is erased.

Every entity but the connectivity sensor takes its availability from ``status``. The node id is
``<store>-<terminal>``, which also names the terminal's broker account (docs/broker-security.md). Events arrive
through ``accept`` on the worker threads and only update the state kept here; ``tick`` (the daemon's main loop)
publishes what changed, and everything again after each reconnect, so the broker always holds the latest.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent import __version__
from agent.delivery.topics import Topics
from agent.events import Event

logger = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any], bool], bool]
ORIGIN = {"name": "store-edge-agent", "sw_version": __version__}


def slug(text: str) -> str:
    """Home Assistant's id alphabet for node and object ids: ``[a-zA-Z0-9_-]``."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text)


@dataclass(frozen=True)
class ZoneSpec:
    camera: str
    zone: str
    queue: bool


class HomeAssistantBridge:
    """Discovery configs and state topics for one terminal (see the module docstring)."""

    def __init__(
        self,
        topics: Topics,
        *,
        store_name: str,
        location: str,
        zones: Sequence[ZoneSpec],
        discovery_prefix: str = "homeassistant",
        member_sensor: bool = False,
    ) -> None:
        self.topics = topics
        self.node = slug(f"{topics.store_id}-{topics.terminal_id}")
        self.prefix = discovery_prefix
        self.zones = list(zones)
        self.member_sensor = member_sensor
        self.device = {
            "identifiers": [self.node],
            "name": f"{store_name} {topics.terminal_id}".strip(),
            "manufacturer": "store-edge-agent",
            "model": "store terminal",
            "sw_version": __version__,
            **({"suggested_area": location} if location else {}),
        }
        self._lock = threading.Lock()
        self._state: dict[str, dict[str, Any]] = {}
        for z in self.zones:
            self._state[self.zone_topic(z)] = {"count": 0}
            if z.queue:
                self._state[self.queue_topic(z)] = {"length": 0, "longest_wait_s": 0.0}
        if member_sensor:
            self._state[self.member_topic] = {"member_id": None, "camera": None, "at": None}
        self._dirty: set[str] = set(self._state)
        self._connects_seen = -1

    # --- topics ---------------------------------------------------------------------------------

    def zone_topic(self, z: ZoneSpec) -> str:
        return f"{self.topics.base}/ha/zone/{slug(z.camera)}/{slug(z.zone)}"

    def queue_topic(self, z: ZoneSpec) -> str:
        return f"{self.topics.base}/ha/queue/{slug(z.camera)}/{slug(z.zone)}"

    @property
    def member_topic(self) -> str:
        return f"{self.topics.base}/ha/member"

    def config_topic(self, component: str, object_id: str) -> str:
        return f"{self.prefix}/{component}/{self.node}/{object_id}/config"

    # --- discovery ------------------------------------------------------------------------------

    def _entity(self, object_id: str, name: str, state_topic: str, **options: Any) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"{self.node}_{object_id}",
            "state_topic": state_topic,
            "device": self.device,
            "origin": ORIGIN,
            **options,
        }

    def _available(self) -> dict[str, Any]:
        return {
            "availability": [
                {
                    "topic": self.topics.status,
                    "value_template": "{{ value_json.state }}",
                    "payload_available": "online",
                    "payload_not_available": "offline",
                }
            ]
        }

    def discovery(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (config topic, config payload) this terminal announces."""
        out = [
            (
                self.config_topic("binary_sensor", "online"),
                self._entity(
                    "online",
                    "Online",
                    self.topics.status,
                    device_class="connectivity",
                    value_template="{{ value_json.state }}",
                    payload_on="online",
                    payload_off="offline",
                ),
            ),
            (
                self.config_topic("sensor", "outbox_depth"),
                self._entity(
                    "outbox_depth",
                    "Events waiting",
                    self.topics.health,
                    value_template="{{ value_json.outbox.depth }}",
                    unit_of_measurement="events",
                    state_class="measurement",
                    entity_category="diagnostic",
                    **self._available(),
                ),
            ),
        ]
        for z in self.zones:
            object_id = slug(f"people_{z.camera}_{z.zone}")
            out.append(
                (
                    self.config_topic("sensor", object_id),
                    self._entity(
                        object_id,
                        f"People in {z.zone} ({z.camera})",
                        self.zone_topic(z),
                        value_template="{{ value_json.count }}",
                        unit_of_measurement="people",
                        state_class="measurement",
                        icon="mdi:account-group",
                        **self._available(),
                    ),
                )
            )
            if z.queue:
                object_id = slug(f"queue_{z.camera}_{z.zone}")
                out.append(
                    (
                        self.config_topic("sensor", object_id),
                        self._entity(
                            object_id,
                            f"Queue at {z.zone} ({z.camera})",
                            self.queue_topic(z),
                            value_template="{{ value_json.length }}",
                            json_attributes_topic=self.queue_topic(z),
                            json_attributes_template="{{ {'longest_wait_s': value_json.longest_wait_s} | tojson }}",
                            unit_of_measurement="people",
                            state_class="measurement",
                            icon="mdi:human-queue",
                            **self._available(),
                        ),
                    )
                )
        if self.member_sensor:
            out.append(
                (
                    self.config_topic("sensor", "last_member"),
                    self._entity(
                        "last_member",
                        "Last identified member",
                        self.member_topic,
                        value_template="{{ value_json.member_id if value_json.member_id else 'none' }}",
                        json_attributes_topic=self.member_topic,
                        json_attributes_template="{{ {'camera': value_json.camera, 'at': value_json.at} | tojson }}",
                        icon="mdi:account-check",
                        **self._available(),
                    ),
                )
            )
        return out

    # --- state ----------------------------------------------------------------------------------

    def accept(self, event: Event) -> None:
        """An event on its way to the outbox (any worker thread): keep what a sensor shows."""
        body = event.to_payload()
        kind = event.type
        with self._lock:
            if kind == "zone.occupancy":
                self._set(self.zone_topic(ZoneSpec(body["camera"], body["zone"], False)), {"count": body["count"]})
            elif kind == "queue.length":
                topic = self.queue_topic(ZoneSpec(body["camera"], body["zone"], True))
                self._set(topic, {"length": body["length"], "longest_wait_s": body["longest_wait_s"]})
            elif kind == "shopper.identified" and self.member_sensor:
                self._set(
                    self.member_topic,
                    {"member_id": body["member_id"], "camera": body["camera"], "at": body["captured_at"]},
                )

    def _set(self, topic: str, value: dict[str, Any]) -> None:
        if topic in self._state and self._state[topic] != value:
            self._state[topic] = value
            self._dirty.add(topic)

    def forget_member(self, member_id: str) -> int:
        """Erasure hook: the member sensor stops showing an erased member."""
        with self._lock:
            if self.member_sensor and self._state[self.member_topic].get("member_id") == member_id:
                self._set(self.member_topic, {"member_id": None, "camera": None, "at": None})
                return 1
        return 0

    def state(self, topic: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._state[topic])

    def tick(self, publish: Publish, connects: int, connected: bool) -> int:
        """Publish what changed (everything, and the discovery configs, after a new connection); returns how
        many messages went out. Called from the daemon's main loop."""
        if not connected:
            return 0
        sent = 0
        if connects != self._connects_seen:
            for topic, config in self.discovery():
                sent += publish(topic, config, True)
            with self._lock:
                self._dirty = set(self._state)
            self._connects_seen = connects
            logger.info("home assistant: announced %d entities under %s/", sent, self.prefix)
        with self._lock:
            pending = {t: dict(self._state[t]) for t in self._dirty}
            self._dirty.clear()
        for topic, value in pending.items():
            if publish(topic, value, True):
                sent += 1
            else:
                with self._lock:
                    self._dirty.add(topic)
        return sent

    def close(self) -> None:
        """Nothing to release: retained configs stay, so Home Assistant keeps the device while it is away."""
