"""Graceful overload in a real daemon: a camera far faster than the board can process sheds load in the stated
order (health.degraded), and once the camera stops the steps are undone in reverse."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from agent.delivery.broker import Mosquitto
from tests.conftest import require_data
from tests.delivery.conftest import Listener, start_agent, validator, write_config

Msgs = list[tuple[str, dict[str, Any]]]


def test_overload_sheds_in_order_and_recovers(broker: Mosquitto, models_dir: Path, tmp_path: Path) -> None:
    if not (models_dir / "yolox_nano.onnx").is_file():
        pytest.skip(f"people and face models not found in {models_dir}")
    video = require_data("media/video/vtest_pets2009_480x360.avi")  # 795 real frames: 8 s at 100 fps
    config = write_config(
        tmp_path,
        broker.port,
        models={"directory": str(models_dir)},
        cameras=[{"name": "street", "type": "video-file", "path": str(video), "fps": 100, "realtime": True}],
        pipelines={"face": {"enabled": True}, "people": {"enabled": True, "detect_every": 1, "reid_every": 1}},
        overload={
            "behind_after_s": 1.0,
            "recover_after_s": 1.5,
            "steps": ["people.detector_stride", "product.fps", "face.detector_stride", "people.reid_rate"],
        },
    )
    listener = Listener(broker.port, ["store/test-store/t1/health"], "test-overload")
    listener.wait(lambda m: False, timeout=0.3)
    listener.messages.clear()
    agent = start_agent(config, env={"STORE_AGENT_GALLERY_KEY": "11" * 32})

    def history(msgs: Msgs) -> list[tuple[str, str]]:
        last = msgs[-1][1].get("overload", {}) if msgs else {}
        return [(h["action"], h["step"]) for h in last.get("history", [])]

    try:
        # No product pipeline runs: its step is skipped; the others are taken in the configured order.
        order = ["people.detector_stride", "face.detector_stride", "people.reid_rate"]
        taken = [("taken", step) for step in order]
        log = tmp_path / "agent.log"
        assert listener.wait(lambda m: history(m)[:3] == taken, timeout=60), (
            history(listener.messages),
            log.read_text(),
        )
        degraded = [p["degraded"] for _, p in listener.messages if p["degraded"]]
        assert all(d == order[: len(d)] for d in degraded) and order in degraded, degraded  # health agrees
        # The video ends: nothing left to process, every step undone, last taken first.
        undone = [("undone", step) for step in reversed(order)]
        assert listener.wait(lambda m: history(m)[3:] == undone, timeout=60), history(listener.messages)
        assert listener.wait(lambda m: m[-1][1]["degraded"] == [], timeout=10)
        health = listener.messages[-1][1]
        validator("health").validate(health)
        assert health["overload"]["steps"] == order
        assert health["pipelines"]["people/street"]["dropped"] > 0  # it really was behind
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        listener.close()
