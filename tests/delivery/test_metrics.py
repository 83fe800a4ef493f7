"""Prometheus metrics served by the daemon: scraped during a real run, parsed by the Prometheus project's own
parser (prometheus_client), and equal to the figures of the ``health`` message."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.delivery.broker import Mosquitto, free_port
from agent.errors import AgentError
from agent.runtime.daemon import Daemon
from agent.runtime.metrics import CONTENT_TYPE, render
from tests.delivery.conftest import PATTERN_CAMERA, Listener, loaded_config


def scrape(port: int) -> tuple[str, dict[str, list[Any]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"] == CONTENT_TYPE
        text = response.read().decode()
    families: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"{family.name} declared twice"
        families[family.name] = family.samples
    return text, families


def value(families: dict[str, list[Any]], family: str, sample: str | None = None, **labels: str) -> float:
    matches = [
        s.value
        for s in families[family]
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (family, labels, families.get(family))
    return float(matches[0])


def test_scraped_during_a_run_and_equal_to_health(broker: Mosquitto, tmp_path: Path) -> None:
    port = free_port()
    camera = {**PATTERN_CAMERA, "frames": 40, "realtime": True, "fps": 10}
    loaded = loaded_config(
        tmp_path,
        broker.port,
        cameras=[camera],
        pipelines={"motion": {"enabled": True}},
        integrations={"prometheus": {"enabled": True, "port": port}},
    )
    # the hub's stand-in: with nobody subscribed the terminal keeps its events (no subscriber, docs/mqtt.md)
    hub = Listener(broker.port, ["store/test-store/t1/events/#"], "metrics-hub")
    with Daemon(loaded, replay=True) as daemon:
        assert daemon.metrics is not None and daemon.metrics.port == port
        daemon.serve(until=lambda: daemon.agent.health()["devices"]["cam"].get("items", 0) >= 10)
        _, during = scrape(port)  # the pipelines are running
        assert value(during, "store_agent_ready") == 1.0
        assert value(during, "store_agent_device_up", device="cam", state="online") == 1.0
        first_uptime = value(during, "store_agent_uptime_seconds")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
        assert missing.value.code == 404
        finished, delivered = daemon.replay_to_end(60)
        assert finished and delivered
        health = daemon.health()
        _, after = scrape(port)
        assert value(after, "store_agent_uptime_seconds") >= first_uptime
        info = value(after, "store_agent_info", store="test-store", terminal="t1", version=health["version"])
        assert info == 1.0
        for event_type, count in health["events_emitted"].items():
            assert value(after, "store_agent_events_emitted", "store_agent_events_emitted_total", type=event_type) == (
                count
            )
        for key in ("accepted", "delivered", "committed"):
            assert value(after, f"store_agent_outbox_{key}", f"store_agent_outbox_{key}_total") == health["outbox"][key]
        assert value(after, "store_agent_outbox_depth") == health["outbox"]["depth"] == 0
        assert value(after, "store_agent_mqtt_connected") == 1.0
        assert (
            value(after, "store_agent_mqtt_published", "store_agent_mqtt_published_total")
            == (health["mqtt"]["published"])
        )
        assert value(after, "store_agent_watchdog_ok") == float(health["watchdog_ok"])
        items = health["devices"]["cam"]["items"]
        assert value(after, "store_agent_devices_items", "store_agent_devices_items_total", device="cam") == items
        assert "store_agent_system_rss_bytes" in after and value(after, "store_agent_system_rss_bytes") > 10e6
    hub.close()
    with pytest.raises(urllib.error.URLError):  # closed with the daemon
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_loopback_only_by_default_and_a_taken_port_is_a_config_error(broker: Mosquitto, tmp_path: Path) -> None:
    port = free_port()
    loaded = loaded_config(
        tmp_path, broker.port, cameras=[PATTERN_CAMERA], integrations={"prometheus": {"enabled": True, "port": port}}
    )
    second = loaded_config(
        tmp_path / "second",
        broker.port,
        cameras=[PATTERN_CAMERA],
        terminal={"id": "t2"},
        integrations={"prometheus": {"enabled": True, "port": port}},
    )
    with Daemon(loaded) as daemon:
        assert daemon.metrics is not None
        assert daemon.metrics.server.server_address[0] == "127.0.0.1"
        with pytest.raises(AgentError, match=f"integrations.prometheus: cannot listen on 127.0.0.1:{port}"):
            Daemon(second).__enter__()
    off = loaded_config(tmp_path / "off", broker.port, cameras=[PATTERN_CAMERA])
    with Daemon(off) as daemon:
        assert daemon.metrics is None, "off by default"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, "nothing listens when it is off"


def test_the_exposition_of_a_health_payload_is_strict_text_format() -> None:
    """Names, labels (escaped), counters and gauges from a health payload with awkward names."""
    health = {
        "store_id": "s1",
        "terminal_id": "t1",
        "version": "1.2",
        "uptime_s": 12.5,
        "ready": True,
        "devices": {'door "main"': {"kind": "camera", "state": "offline", "items": 3, "fps": 0.0}},
        "pipelines": {"motion/door": {"processed": 3, "errors": {"ValueError": 1}, "busy_s": 0.25}},
        "events_emitted": {"scene.motion": 2},
        "outbox": {"depth": 1, "dropped": {"space": {"telemetry": 4}}, "dropped_total": 4, "moved_aside": None},
        "system": {"temperature_c": {"cpu-thermal": 51.2}, "load_1m": 0.5},
    }
    text = render(health)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["store_agent_events_emitted"].type == "counter"
    assert families["store_agent_uptime_seconds"].type == "gauge"
    (up,) = families["store_agent_device_up"].samples
    assert up.labels == {"device": 'door "main"', "state": "offline"} and up.value == 0
    (errors,) = families["store_agent_pipelines_errors"].samples
    assert errors.labels == {"worker": "motion/door", "error": "ValueError"} and errors.value == 1
    (dropped,) = families["store_agent_outbox_dropped"].samples
    assert dropped.labels == {"reason": "space", "class": "telemetry"} and dropped.value == 4
    (temperature,) = families["store_agent_system_temperature_celsius"].samples
    assert temperature.labels == {"zone": "cpu-thermal"} and temperature.value == 51.2
    assert families["store_agent_pipelines_busy_seconds"].samples[0].value == 0.25
    assert "moved_aside" not in text, "strings are not metrics"
    assert not [line for line in text.splitlines() if line.startswith("store_agent_outbox_dropped_total ")]
