"""The agent: builds sources, pipelines and workers from the config, runs them, stops them cleanly.

Everything is started and closed through one ``ExitStack`` in reverse order:
sources stop first (their queues close), workers drain for a bounded time and
conclude what is open, and the sink is closed last so every event emitted on
the way down is delivered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from agent import __version__, clock
from agent.config.loader import LoadedConfig
from agent.errors import AgentError
from agent.events import DeviceStateChanged, Event, EventBody, EventStamper
from agent.pipelines.registry import PLUGINS
from agent.pipelines.shared import Shared
from agent.pipelines.stage import Stage
from agent.runtime.overload import OverloadController
from agent.runtime.queues import DropPolicy, StageQueue
from agent.runtime.sink import EventSink
from agent.runtime.source import SourceRunner
from agent.runtime.state import StateStore
from agent.runtime.wiring import build_shared
from agent.runtime.worker import Worker
from drivers.base import DeviceState, Driver
from drivers.registry import DeviceKind, create_driver
from models.runtime import release_freed_memory

__all__ = ["QUEUE_POLICY", "Agent", "AgentError"]

logger = logging.getLogger(__name__)

#: Queue length and drop policy per source kind (see agent.runtime.queues).
QUEUE_POLICY: dict[DeviceKind, tuple[int, DropPolicy]] = {
    "camera": (2, DropPolicy.LATEST_WINS),
    "microphone": (400, DropPolicy.DROP_NEWEST),  # about 12 s of 30 ms chunks
    "serial": (256, DropPolicy.NEVER_DROP),
}

OPEN_WAIT_S = 15.0


class Agent:
    def __init__(
        self, loaded: LoadedConfig, sink: EventSink, *, replay: bool = False, state: StateStore | None = None
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.sink = sink
        self.replay = replay
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.started_mono = time.monotonic()
        self.ready_after_s: float | None = None
        self.sources: list[SourceRunner] = []
        self.workers: list[Worker] = []
        self.stages: list[Stage[Any]] = []
        self.shared: Shared | None = None
        self.emitted: Counter[str] = Counter()
        self.not_accepted: Counter[str] = Counter()
        self._not_accepted_logged = 0.0
        self._emit_lock = threading.Lock()
        self._stack = ExitStack()
        self.state: StateStore | None = state  # given by the daemon so a config reload keeps the boot counter
        self._stamper: EventStamper | None = None
        self.overload: OverloadController | None = None

    # --- building -------------------------------------------------------------------------

    def _check_replay(self, drivers: dict[str, Driver[Any, Any]]) -> None:
        for kind, options in self.config.devices():
            driver = drivers[options.name]
            if not driver.is_replay:
                raise AgentError(f"replay needs replay sources only; {kind} {options.name!r} is a live device")
            if driver.endless:
                raise AgentError(f"replay would never finish: {kind} {options.name!r} loops forever")

    def _build_stages(self, shared: Shared) -> list[Stage[Any]]:
        """Every enabled pipeline's stages, in registry order (always-on ones with their default settings)."""
        sections = self.config.pipelines.sections()
        stages: list[Stage[Any]] = []
        for plugin in PLUGINS:
            settings = plugin.settings(enabled=True) if plugin.always_on else sections[plugin.name]
            if settings.enabled:
                stages.extend(plugin.builder()(settings, shared))
        return stages

    def start(self) -> None:
        """Warm up pipelines, open devices, start threads; returns once the agent is ready."""
        config = self.config
        kinds = {options.name: kind for kind, options in config.devices()}
        drivers = {options.name: create_driver(kind, options) for kind, options in config.devices()}
        if self.replay:
            self._check_replay(drivers)
        state_dir = Path(config.storage.state_dir)
        if self.state is None:
            self.state = StateStore(state_dir)
        self._stamper = EventStamper(config.store.id, config.terminal.id, self.state.next_seq)
        self._stack.callback(self.sink.close)
        shared_stack = self._stack.enter_context(ExitStack())  # closes after every stage has closed
        self.shared = build_shared(config, shared_stack)
        self.stages = self._build_stages(self.shared)
        for stage in self.stages:
            stage.warm_up()
            self._stack.callback(stage.close)
        release_freed_memory()  # what model loads and the catalogue freed, back to the system (models/runtime.py)

        queues_by_source: dict[str, list[StageQueue[Any]]] = {}
        for stage in self.stages:
            kind = kinds[stage.source]
            size, policy = QUEUE_POLICY[kind]
            backpressure = not drivers[stage.source].realtime
            queue: StageQueue[Any] = StageQueue(f"{stage.name}/{stage.source}", size, policy, backpressure)
            queues_by_source.setdefault(stage.source, []).append(queue)
            self.workers.append(Worker(stage, queue, self.emit, self.stop_event))
        for name, driver in drivers.items():
            runner = SourceRunner(kinds[name], driver, queues_by_source.get(name, []), self.stop_event, self._on_state)
            self.sources.append(runner)

        self._stack.callback(self._join_workers)
        self._stack.callback(self._join_sources)
        for worker in self.workers:
            worker.start()
        for source in self.sources:
            source.start()
        if config.overload.enabled and not self.replay:  # a replay waits for its workers: nothing to shed
            self.overload = OverloadController(config.overload, self.workers, self.stop_event)
            self.overload.start()
        deadline = time.monotonic() + OPEN_WAIT_S
        for source in self.sources:
            source.opened_once.wait(max(0.0, deadline - time.monotonic()))
        self.ready_after_s = time.monotonic() - self.started_mono
        self.ready.set()
        logger.info(
            "ready in %.2f s: %d devices, pipelines %s",
            self.ready_after_s,
            len(self.sources),
            ", ".join(config.pipelines.enabled_names()) or "none",
        )

    # --- running --------------------------------------------------------------------------

    def emit(self, body: EventBody) -> Event | None:
        """Stamp and deliver one event (called from workers and source threads); the event, or ``None`` if the
        sink refused it (counted in ``health.events_not_accepted`` and logged: never an exception that would end
        the calling worker or device thread)."""
        assert self._stamper is not None
        event = self._stamper.stamp(body)
        try:
            self.sink.accept(event)
        except Exception as exc:
            with self._emit_lock:
                self.not_accepted[event.type] += 1
                failures = sum(self.not_accepted.values())
            if failures <= 10 or time.monotonic() - self._not_accepted_logged >= 60.0:
                self._not_accepted_logged = time.monotonic()
                logger.error("event %s %s not accepted (%d so far): %s", event.type, event.event_id, failures, exc)
            return None
        with self._emit_lock:
            self.emitted[event.type] += 1
        return event

    def _on_state(
        self, device: str, kind: DeviceKind, state: DeviceState, previous: DeviceState, reason: str | None
    ) -> None:
        self.emit(
            DeviceStateChanged(
                captured_at=clock.now(),
                device=device,
                kind=kind,
                state=state.value,
                previous=previous.value,
                reason=reason,
            )
        )

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Replay: wait until every source is exhausted and every worker has drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in [s.thread for s in self.sources] + [w.thread for w in self.workers]:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
            if thread.is_alive():
                return False
        return True

    def _join_sources(self) -> None:
        self.stop_event.set()
        for source in self.sources:
            source.thread.join(5.0)
            if source.thread.is_alive():
                logger.error("device %s did not stop within 5 s", source.name)

    def _join_workers(self) -> None:
        for worker in self.workers:
            worker.thread.join(5.0)
            if worker.thread.is_alive():
                logger.error("worker %s did not stop within 5 s", worker.name)

    def close(self) -> None:
        """Stop everything in reverse order of starting; safe to call twice."""
        self.stop_event.set()
        self._stack.close()

    def __enter__(self) -> Agent:
        try:
            self.start()
        except BaseException:
            self.close()  # release what was started before the failure (threads, sessions, the sink)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- observing ------------------------------------------------------------------------

    def watchdog_ok(self) -> bool:
        """Every enabled source is healthy (SourceRunner.watchdog_ok) and every worker thread runs."""
        if not all(source.watchdog_ok() for source in self.sources):
            return False
        return all(w.thread.is_alive() for w in self.workers) or self.replay

    def health(self) -> dict[str, Any]:
        with self._emit_lock:
            emitted = dict(self.emitted)
        fps = {s.name: round(s.fps(), 2) for s in self.sources}
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "ready": self.ready.is_set(),
            "boot_count": self.state.boot_count if self.state else None,
            "devices": {s.name: s.stats() for s in self.sources},
            "pipelines": {w.name: {**w.stats(), "source_fps": fps.get(w.pipeline.source)} for w in self.workers},
            "events_emitted": emitted,
            "events_not_accepted": dict(self.not_accepted),
            "degraded": self.overload.degraded() if self.overload is not None else [],
            **({"overload": self.overload.health()} if self.overload is not None else {}),
        }
