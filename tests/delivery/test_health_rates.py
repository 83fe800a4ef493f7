"""Health over a real daemon run: per pipeline achieved fps and capture-to-event latency, and the process's
resources (peak RSS, CPU seconds, threads, open files), as an operator reads them over MQTT."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from agent.delivery.broker import Mosquitto
from tests.delivery.conftest import PATTERN_CAMERA, Listener, start_agent, validator, write_config


def test_health_shows_pipeline_rates_latency_and_process(broker: Mosquitto, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        broker.port,
        cameras=[{**PATTERN_CAMERA, "realtime": True}],
        pipelines={"motion": {"enabled": True}},
        overload={"enabled": False},
    )
    listener = Listener(broker.port, ["store/test-store/t1/health"], "test-health-rates")
    listener.wait(lambda m: False, timeout=0.3)
    listener.messages.clear()
    agent = start_agent(config)

    def steady(msgs: list[tuple[str, dict[str, Any]]]) -> bool:
        if not msgs:
            return False
        worker = msgs[-1][1]["pipelines"].get("motion/cam", {})
        return bool(worker.get("latency_ms", {}).get("n", 0) >= 20 and worker.get("fps", 0) >= 5)

    try:
        assert listener.wait(steady, timeout=40), listener.messages[-1:] or (tmp_path / "agent.log").read_text()
        health = listener.messages[-1][1]
        validator("health").validate(health)
        worker = health["pipelines"]["motion/cam"]
        assert 5 <= worker["fps"] <= 12 and 5 <= worker["source_fps"] <= 12, worker  # a 10 fps camera
        latency = worker["latency_ms"]
        assert 0 < latency["p50"] <= latency["p99"] < 2000, latency
        assert worker["dropped"] == sum(worker["queue"]["dropped"].values())
        assert health["degraded"] == [] and "overload" not in health  # overload.enabled: false, no controller
        system = health["system"]
        assert system["rss_peak_bytes"] >= system["rss_bytes"] > 10_000_000
        assert system["cpu_s"] > 0 and system["threads"] >= 4 and system["open_fds"] >= 4
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        listener.close()
