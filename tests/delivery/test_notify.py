"""sd_notify: a real ``store-agent run`` tells a NOTIFY_SOCKET READY, then WATCHDOG, then STOPPING."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

from agent.delivery.broker import Mosquitto
from tests.delivery.conftest import PATTERN_CAMERA, start_agent, write_config


def test_ready_watchdog_stopping_in_order(broker: Mosquitto, tmp_path: Path) -> None:
    config = write_config(tmp_path, broker.port, cameras=[PATTERN_CAMERA], pipelines={"motion": {"enabled": True}})
    name = f"store-agent-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)  # an abstract socket, as systemd may hand out
        sock.settimeout(0.5)
        agent = start_agent(config, {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "400000"})
        seen: list[str] = []
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "WATCHDOG=1" not in seen:
                with contextlib.suppress(TimeoutError):
                    seen.extend(sock.recv(4096).decode().split("\n"))
            agent.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and "STOPPING=1" not in seen:
                with contextlib.suppress(TimeoutError):
                    seen.extend(sock.recv(4096).decode().split("\n"))
            assert agent.wait(15) == 0
        finally:
            if agent.poll() is None:
                agent.kill()
    states = [s for s in seen if s in ("READY=1", "WATCHDOG=1", "STOPPING=1")]
    assert states[0] == "READY=1" and "WATCHDOG=1" in states and states[-1] == "STOPPING=1", states
    assert states.index("WATCHDOG=1") < states.index("STOPPING=1")
    statuses = [s for s in seen if s.startswith("STATUS=")]
    assert any("MQTT connected" in s for s in statuses), statuses


def test_long_start_up_steps_extend_the_start_timeout(broker: Mosquitto, tmp_path: Path, models_dir: Path) -> None:
    """Loading models reports progress with EXTEND_TIMEOUT_USEC before READY=1, so TimeoutStartSec=120 is not
    the limit of a slow board's whole start-up, only of each step."""
    config = write_config(
        tmp_path,
        broker.port,
        cameras=[PATTERN_CAMERA],
        pipelines={"people": {"enabled": True}},
        models={"directory": str(models_dir)},
    )
    name = f"store-agent-extend-{os.getpid()}"
    seen: list[list[str]] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(0.5)
        agent = start_agent(config, {"NOTIFY_SOCKET": "@" + name})
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any("READY=1" in m for m in seen):
                with contextlib.suppress(TimeoutError):
                    seen.append(sock.recv(4096).decode().split("\n"))
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(15) == 0
        finally:
            if agent.poll() is None:
                agent.kill()
    ready = next(i for i, m in enumerate(seen) if "READY=1" in m)
    extends = [m for m in seen[:ready] if m[0].startswith("EXTEND_TIMEOUT_USEC=")]
    statuses = [m[1] for m in extends]
    # the first step is said at once; later ones within 2 s of it are not repeated (the catalogue reports each
    # photo), which shortens an extension by at most those 2 s
    assert statuses[0] == "STATUS=starting: loading model yolox-nano", seen
    people = {f"STATUS=starting: loading model {m}" for m in ("yolox-nano", "movenet-lightning", "osnet-x0.25-msmt17")}
    assert set(statuses) <= people
    assert all(m[0] == "EXTEND_TIMEOUT_USEC=120000000" for m in extends)  # CPU: 2 minutes per model at most
    assert not any(m[0].startswith("EXTEND_TIMEOUT_USEC=") for m in seen[ready:])  # only while starting
