"""Home Assistant MQTT discovery against a real mosquitto, checked against Home Assistant's documented schema.

What Home Assistant documents for MQTT discovery (integrations/mqtt, sensor.mqtt, binary_sensor.mqtt):
the config topic is ``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config`` with ids from
``[a-zA-Z0-9_-]``; the retained payload is a JSON object of the component's options (``state_topic`` required,
``unique_id`` for an entity that can be edited, ``device`` with ``identifiers``, ``origin`` with ``name``,
``availability`` entries with a ``topic``), and Home Assistant renders ``value_template`` with Jinja2 over
``value_json``. ``check_config`` holds each documented option list; the templates are rendered with Jinja2 over
the state the terminal really published, so the value Home Assistant would show is the value asserted.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jinja2
import pytest

from agent.config.schema import MqttSection
from agent.delivery.broker import Mosquitto
from agent.delivery.client import MqttConnection
from agent.delivery.homeassistant import HomeAssistantBridge, ZoneSpec
from agent.delivery.topics import Topics
from agent.events import EventStamper, compact_json
from agent.pipelines.face.events import ShopperIdentified
from agent.pipelines.people.events import QueueLength, ZoneOccupancy
from agent.runtime.daemon import Daemon
from tests.conftest import require_data
from tests.delivery.conftest import REPO, Listener, loaded_config, write_config

COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
    "device", "device_class", "enabled_by_default", "encoding", "entity_category", "entity_picture",
    "expire_after", "force_update", "icon", "json_attributes_template", "json_attributes_topic", "name",
    "object_id", "origin", "payload_available", "payload_not_available", "platform", "qos", "state_topic",
    "unique_id", "value_template",
}  # fmt: skip
OPTIONS = {
    "sensor": COMMON
    | {"last_reset_value_template", "options", "state_class", "suggested_display_precision", "unit_of_measurement"},
    "binary_sensor": COMMON | {"off_delay", "payload_off", "payload_on"},
}
DEVICE = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id", "name",
    "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN = {"name", "sw_version", "support_url"}
AVAILABILITY = {"payload_available", "payload_not_available", "topic", "value_template"}
BINARY_DEVICE_CLASSES = {"connectivity", "occupancy", "presence", "problem", "running"}
ID = r"[a-zA-Z0-9_-]+"


def check_config(prefix: str, topic: str, config: dict[str, Any]) -> str:
    """Raise AssertionError where ``config`` at ``topic`` breaks the documented schema; returns the component."""
    match = re.fullmatch(rf"{re.escape(prefix)}/(sensor|binary_sensor)/(?:{ID}/)?({ID})/config", topic)
    assert match, f"{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config"
    component = match[1]
    unknown = set(config) - OPTIONS[component]
    assert not unknown, f"{topic}: options Home Assistant does not document for {component}: {unknown}"
    assert isinstance(config["state_topic"], str) and config["state_topic"] and "+" not in config["state_topic"]
    assert re.fullmatch(ID, config["unique_id"]), config["unique_id"]
    device = config["device"]
    assert set(device) <= DEVICE and device["identifiers"] and device["name"], device
    assert set(config["origin"]) <= ORIGIN and config["origin"]["name"], config["origin"]
    for entry in config.get("availability", []):
        assert set(entry) <= AVAILABILITY and entry["topic"], entry
    if component == "sensor" and "state_class" in config:
        assert config["state_class"] in {"measurement", "total", "total_increasing"}
    if component == "binary_sensor" and "device_class" in config:
        assert config["device_class"] in BINARY_DEVICE_CLASSES
    assert config.get("entity_category", "diagnostic") in {"config", "diagnostic"}
    for key in ("value_template", "json_attributes_template"):
        if key in config:
            jinja2.Environment().from_string(config[key])  # it parses as Jinja2
    return component


def render(template: str, state: dict[str, Any]) -> str:
    """What Home Assistant shows: the value template over the state payload (``value`` and ``value_json``)."""
    return jinja2.Environment().from_string(template).render(value=json.dumps(state), value_json=state).strip()


def retained(port: int, topics: list[str], client_id: str) -> dict[str, dict[str, Any]]:
    """The retained message of every topic under ``topics`` (subscribe, take what the broker hands over)."""
    listener = Listener(port, topics, client_id)
    try:
        listener.wait(lambda m: False, timeout=2.0)
        return dict(listener.messages)
    finally:
        listener.close()


def test_discovery_and_states_from_a_real_run_of_the_people_pipeline(broker: Mosquitto, tmp_path: Path) -> None:
    """PETS 2009 through people counting with a zone and a queue zone: Home Assistant finds the terminal, its
    connectivity, the outbox depth, people per zone and the queue, and their states are the last events'."""
    clip = require_data("media/video/vtest_pets2009_480x360.avi")
    models = require_data("models")
    zones = [
        {"name": "pavement", "points": [[0.0, 0.4], [1.0, 0.4], [1.0, 1.0], [0.0, 1.0]]},
        {"name": "kerb", "points": [[0.0, 0.0], [0.5, 0.0], [0.5, 0.6], [0.0, 0.6]], "queue": True,
         "queue_min_wait_s": 1.0},
    ]  # fmt: skip
    config = write_config(
        tmp_path,
        broker.port,
        store={"id": "ha-store", "name": "HA Store"},
        terminal={"id": "door", "location": "Entrance"},
        models={"directory": str(models)},
        cameras=[{"name": "street", "type": "video-file", "path": str(clip), "realtime": False, "fps": 10}],
        pipelines={"people": {"enabled": True, "scenes": {"street": {"zones": zones}}}},
        integrations={"home_assistant": {"enabled": True}},
    )
    # A subscriber stands in for the hub: with nobody subscribed the broker answers "no matching subscribers"
    # and the terminal keeps its events (docs/mqtt.md), so replay would wait for a delivery that never comes.
    hub = Listener(broker.port, ["store/ha-store/door/events/#"], "ha-hub")
    try:
        run = subprocess.run(
            [sys.executable, "-m", "agent", "replay", "-c", str(config), "--print-events", "--timeout", "600"],
            cwd=REPO, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        hub.close()
    assert run.returncode == 0, run.stderr[-3000:]
    events = [json.loads(line) for line in run.stdout.splitlines()]
    occupancy = {e["zone"]: e["count"] for e in events if e["type"] == "zone.occupancy"}
    queue = [e for e in events if e["type"] == "queue.length"]
    assert occupancy and max(occupancy.values()) >= 0 and queue, "the clip must give zone and queue events"

    base = "store/ha-store/door"
    found = retained(broker.port, ["homeassistant/#", f"{base}/ha/#", f"{base}/status", f"{base}/health"], "ha-1")
    configs = {t: p for t, p in found.items() if t.startswith("homeassistant/")}
    components = {t: check_config("homeassistant", t, c) for t, c in configs.items()}
    assert sorted(components) == sorted(
        [
            "homeassistant/binary_sensor/ha-store-door/online/config",
            "homeassistant/sensor/ha-store-door/outbox_depth/config",
            "homeassistant/sensor/ha-store-door/people_street_pavement/config",
            "homeassistant/sensor/ha-store-door/people_street_kerb/config",
            "homeassistant/sensor/ha-store-door/queue_street_kerb/config",
        ]
    ), "no member sensor unless asked for"
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    assert all("mac" not in c for c in configs.values()), "discovery configs are read by Home Assistant as they are"
    device = configs["homeassistant/sensor/ha-store-door/outbox_depth/config"]["device"]
    assert device["identifiers"] == ["ha-store-door"] and device["suggested_area"] == "Entrance"

    online = configs["homeassistant/binary_sensor/ha-store-door/online/config"]
    status = found[online["state_topic"]]
    assert online["state_topic"] == f"{base}/status" and online["device_class"] == "connectivity"
    assert render(online["value_template"], status) == online["payload_off"] == "offline", "replay has stopped"
    for config_topic, config in configs.items():
        for entry in config.get("availability", []):
            assert entry["topic"] == f"{base}/status"
            assert render(entry["value_template"], status) == entry["payload_not_available"]
        state = found[config["state_topic"]]
        shown = render(config["value_template"], state)
        if "people_street_" in config_topic:
            zone = config_topic.split("people_street_")[1].split("/")[0]
            assert shown == str(occupancy[zone]), (zone, state, run.stderr[-2000:])
        elif "queue_street_kerb" in config_topic:
            assert shown == str(queue[-1]["length"])
            attributes = json.loads(render(config["json_attributes_template"], state))
            assert attributes == {"longest_wait_s": queue[-1]["longest_wait_s"]}
        elif config_topic.endswith("outbox_depth/config"):
            assert shown == str(found[f"{base}/health"]["outbox"]["depth"])


def test_member_sensor_is_opt_in_and_forgets_an_erased_member(broker: Mosquitto) -> None:
    """With member_sensor on, the last identified member is a sensor; erasing that member clears it at the
    broker too; without it, no member id ever reaches a Home Assistant topic."""
    conn = MqttConnection(MqttSection(host="127.0.0.1", port=broker.port), "ha-member-test")
    conn.start()
    assert conn.wait_connected(10)

    def publish(topic: str, payload: dict[str, Any], retain: bool) -> bool:
        return conn.publish(topic, compact_json(payload).encode(), qos=1, retain=retain) is not None

    stamper = EventStamper("s9", "kiosk", iter(range(1, 100)).__next__)
    seen = stamper.stamp(
        ShopperIdentified(
            captured_at=time.time(), member_id="m-ada", confidence=0.7, margin=0.2, liveness=0.9, camera="kiosk-cam",
            track_id="f-1", frames=3,
        )
    )  # fmt: skip
    zone = ZoneSpec("kiosk-cam", "till", True)
    try:
        for opt_in, client in ((True, "ha-m1"), (False, "ha-m2")):
            topics = Topics("store", "s9", f"kiosk-{int(opt_in)}")
            bridge = HomeAssistantBridge(
                topics, store_name="S9", location="", zones=[zone], member_sensor=opt_in, discovery_prefix="ha-test"
            )
            bridge.accept(seen)
            bridge.accept(stamper.stamp(ZoneOccupancy(captured_at=time.time(), camera="kiosk-cam", zone="till",
                                                      count=2, reason="change")))  # fmt: skip
            bridge.accept(stamper.stamp(QueueLength(captured_at=time.time(), camera="kiosk-cam", zone="till",
                                                    length=1, longest_wait_s=4.5)))  # fmt: skip
            assert bridge.tick(publish, conn.connects, True) >= 4
            assert bridge.tick(publish, conn.connects, True) == 0, "nothing changed: nothing is sent again"
            found = retained(broker.port, ["ha-test/#", f"{topics.base}/ha/#"], client)
            for topic, config in found.items():
                if topic.startswith("ha-test/"):
                    check_config("ha-test", topic, config)
            text = json.dumps(found)
            node = f"s9-kiosk-{int(opt_in)}"
            if not opt_in:
                assert "m-ada" not in text and f"ha-test/sensor/{node}/last_member/config" not in found
                continue
            member = found[f"ha-test/sensor/{node}/last_member/config"]
            assert render(member["value_template"], found[member["state_topic"]]) == "m-ada"
            assert json.loads(render(member["json_attributes_template"], found[member["state_topic"]]))["camera"] == (
                "kiosk-cam"
            )
            assert render(found[f"ha-test/sensor/{node}/people_kiosk-cam_till/config"]["value_template"],
                          found[f"{topics.base}/ha/zone/kiosk-cam/till"]) == "2"  # fmt: skip
            assert bridge.forget_member("m-other") == 0 and bridge.forget_member("m-ada") == 1
            assert bridge.tick(publish, conn.connects, True) == 1
            after = retained(broker.port, [f"{topics.base}/ha/#"], client + "-after")
            assert render(member["value_template"], after[member["state_topic"]]) == "none"
            assert "m-ada" not in json.dumps(after)
    finally:
        conn.stop()


def test_a_reconnect_announces_everything_again(broker: Mosquitto) -> None:
    """A broker that lost its retained messages gets the discovery and the states again after the reconnect."""
    published: list[str] = []

    def publish(topic: str, payload: dict[str, Any], retain: bool) -> bool:
        assert retain, "Home Assistant misses configs and states that are not retained"
        published.append(topic)
        return True

    bridge = HomeAssistantBridge(Topics("store", "s1", "t1"), store_name="S", location="", zones=[])
    assert bridge.tick(publish, 1, False) == 0, "nothing while disconnected"
    first = bridge.tick(publish, 1, True)
    assert first == 2 and bridge.tick(publish, 1, True) == 0
    assert bridge.tick(publish, 2, True) == first, "a new connection: everything again"
    del broker


@pytest.mark.parametrize(("prefix", "member"), [("homeassistant", False), ("site/ha", True)])
def test_the_settings_reach_the_bridge(tmp_path: Path, prefix: str, member: bool) -> None:
    """``discovery_prefix`` places every config, ``member_sensor`` adds the member sensor, ``enabled`` makes the
    daemon build the bridge at all; the zones come from the people pipeline's scenes."""
    scene = {"door": {"zones": [{"name": "till", "points": [[0, 0], [1, 0], [1, 1]], "queue": True}]}}
    settings = {"enabled": True, "discovery_prefix": prefix, "member_sensor": member}
    loaded = loaded_config(
        tmp_path, 1883, cameras=[{"name": "door", "type": "test-pattern"}],
        pipelines={"people": {"enabled": True, "scenes": scene}},
        integrations={"home_assistant": settings},
    )  # fmt: skip
    daemon = Daemon(loaded)
    try:
        bridge = daemon._home_assistant(loaded)
        assert bridge is not None
        configs = bridge.discovery()
        assert all(check_config(prefix, t, c) for t, c in configs)
        objects = sorted(t.split("/")[-2] for t, _ in configs)
        assert objects == sorted(["online", "outbox_depth", "people_door_till", "queue_door_till"]
                                 + (["last_member"] if member else []))  # fmt: skip
        off = loaded_config(tmp_path / "off", 1883, integrations={"home_assistant": {**settings, "enabled": False}})
        assert daemon._home_assistant(off) is None
    finally:
        daemon._stack.close()
