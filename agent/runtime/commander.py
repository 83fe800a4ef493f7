"""Runs the hub's commands one at a time on their own thread, so the main loop (health, the systemd watchdog)
never waits on one; a command past its time limit is answered "timed out" and its late outcome only logged."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.commands.base import reply, request_id_of
from agent.delivery.publisher import CommandQueue, CommandRequest

logger = logging.getLogger(__name__)

#: Runs one request and returns its reply payload (never raises).
Run = Callable[[CommandRequest], dict[str, Any]]
#: Publishes a reply payload for a command name.
Reply = Callable[[str, dict[str, Any]], None]


class Commander:
    def __init__(
        self, requests: CommandQueue, run: Run, publish: Reply, limit_s: Callable[[str], float], stop: threading.Event
    ) -> None:
        self.requests = requests
        self.run = run
        self.publish = publish
        self.limit_s = limit_s
        self.stop = stop
        self.done = 0
        self.timed_out = 0
        self._lock = threading.Lock()
        self._current: tuple[CommandRequest, float, bool] | None = None  # request, started, answered already
        self.thread = threading.Thread(target=self._loop, name="commands", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                request = self.requests.get(timeout=0.5)
            except queue.Empty:
                continue
            with self._lock:
                self._current = (request, time.monotonic(), False)
            answer = self.run(request)
            with self._lock:
                late = self._current is not None and self._current[2]
                self._current = None
                self.done += 1
            if late:
                logger.warning("command %s finished after its time limit: %s", request.name, answer.get("error", "ok"))
            else:
                self.publish(request.name, answer)

    def police(self) -> None:
        """From the main loop: answer a command that has run past its time limit (it keeps running)."""
        with self._lock:
            if self._current is None:
                return
            request, started, answered = self._current
            limit = self.limit_s(request.name)
            if answered or time.monotonic() - started <= limit:
                return
            self._current = (request, started, True)
            self.timed_out += 1
        logger.error("command %s is still running after %.0f s; answering that it timed out", request.name, limit)
        message = f"timed out after {limit:.0f} s (still running; its outcome will be logged)"
        self.publish(request.name, reply(request.name, request_id_of(request.payload), error=message))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            running = None if self._current is None else self._current[0].name
            since = None if self._current is None else round(time.monotonic() - self._current[1], 1)
        return {
            "done": self.done,
            "timed_out": self.timed_out,
            "waiting": self.requests.qsize(),
            "running": running,
            "running_for_s": since,
        }
