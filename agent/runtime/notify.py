"""systemd's notify protocol over ``NOTIFY_SOCKET`` (a datagram socket; ``@`` means an abstract one)."""

from __future__ import annotations

import logging
import os
import socket
import time

logger = logging.getLogger(__name__)


class Notifier:
    """Sends ``READY=1``, ``WATCHDOG=1``, ``STATUS=...``, ``STOPPING=1``; does nothing outside systemd."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        #: Send WATCHDOG=1 this often (half the configured timeout), or never.
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._last_extend: tuple[float, float] = (float("-inf"), 0.0)  # (when, seconds) of the last EXTEND

    def extend(self, status: str, extend_s: float, min_interval_s: float = 2.0) -> bool:
        """During start-up: ``EXTEND_TIMEOUT_USEC`` (systemd allows ``extend_s`` more seconds from now) and the
        status line; at most one message per ``min_interval_s`` unless the new one asks for more time."""
        now = time.monotonic()
        last, last_extend = self._last_extend
        if now - last < min_interval_s and extend_s <= last_extend:
            return False
        self._last_extend = (now, extend_s)
        return self.send(f"EXTEND_TIMEOUT_USEC={int(extend_s * 1_000_000)}", f"STATUS=starting: {status}")

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), target)
            return True
        except OSError as exc:
            logger.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
