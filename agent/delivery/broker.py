"""A local MQTT broker for the demo and the tests: mosquitto on a free port, else amqtt in-process.

mosquitto is preferred (it is what stores run, and it persists sessions across
a restart); ``amqtt`` (pure Python, MQTT 3.1.1 only) is the fallback where no
mosquitto binary is installed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


@dataclass
class BrokerTls:
    """Server side of a TLS listener (PEM files); ``require_certificate`` demands client certificates."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = True


class Mosquitto:
    """A mosquitto process on 127.0.0.1 with persistence in ``workdir``; can be killed and restarted.

    ``extra_conf`` lines are appended to the generated configuration (later settings win), for example a
    ``store-agent broker config`` snippet; when those lines bring their own ``listener`` on ``port``, pass
    ``listener=False`` so that the helper adds neither its own listener nor ``allow_anonymous true``.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        tls: BrokerTls | None = None,
        *,
        extra_conf: Sequence[str] = (),
        listener: bool = True,
    ) -> None:
        if not listener and (port is None or tls is not None):
            raise ValueError("listener=False needs the port of the listener in extra_conf, and no tls")
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (apt install mosquitto)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true"] if listener else []
        lines += [
            "persistence true",
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        if tls is not None:
            lines += [
                f"cafile {tls.ca_file}",
                f"certfile {tls.cert_file}",
                f"keyfile {tls.key_file}",
                "tls_version tlsv1.2",
                f"require_certificate {'true' if tls.require_certificate else 'false'}",
            ]
        lines += extra_conf
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}{log}")
            if reachable("127.0.0.1", self.port, 0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved since the last autosave."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Amqtt:
    """amqtt's broker in a background event loop (MQTT 3.1.1 only), bound to 127.0.0.1."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)
        self._broker: Any = None

    def start(self) -> Amqtt:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        self._thread.start()

        async def boot() -> Any:
            broker = Broker(config, loop=self._loop)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(15)
        return self

    def stop(self) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def start_local_broker(workdir: Path) -> Mosquitto | Amqtt:
    """mosquitto if installed, else amqtt; raises a clear error when neither is available."""
    if mosquitto_binary() is not None:
        return Mosquitto(workdir).start()
    try:
        return Amqtt().start()
    except ImportError:
        raise RuntimeError(
            "no MQTT broker reachable and none to start: install mosquitto (apt install mosquitto) "
            "or amqtt (pip install amqtt==0.12.1)"
        ) from None
