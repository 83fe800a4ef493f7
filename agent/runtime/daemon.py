"""The daemon: the agent's pipelines plus durable delivery, status, health, commands and sd_notify.

Start order: state counters, outbox, publisher (connects in the background),
agent (models warm, devices open), then ``READY=1``. The main thread serves
commands, publishes health every ``mqtt.health_interval_s`` and pets the
systemd watchdog only while every source is fresh and the publisher alive.
Stop order is the reverse through one ``ExitStack``: the agent drains into the
outbox, the publisher publishes ``offline`` and disconnects, the outbox commits
and closes.

Storage trouble (a full disk, a read-only remount, I/O errors) is watched by
one ``StorageMonitor`` shared by the counters and the outbox: each change
becomes a ``storage.state`` event (queued in the outbox, and published at once
while the disk fails) and ``health.storage``. A stop on a failing disk still
ends within systemd's ``TimeoutStopSec`` (the outbox gives up after
``CLOSE_TIMEOUT_S``, counting what it could not write).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from agent import clock, startup
from agent.commands import COMMANDS
from agent.commands.base import CommandFailed, handle
from agent.config.advice import config_warnings
from agent.config.loader import ConfigError, LoadedConfig, load_config
from agent.config.push import PushError, check_push, restore_previous, write_push
from agent.config.schema import StoreConfig
from agent.delivery.homeassistant import HomeAssistantBridge, ZoneSpec
from agent.delivery.outbox import OUTBOX_FILE, Outbox
from agent.delivery.publisher import COMMAND_QUEUE, CommandQueue, CommandRequest, Publisher, encode
from agent.delivery.topics import Topics
from agent.errors import AgentError
from agent.events import Event, StorageStateChanged
from agent.identity.enrollment import register_erasure_hook, unregister_erasure_hook
from agent.identity.gallery import Gallery
from agent.identity.sync import set_recorder
from agent.pipelines.face.resources import gallery_path, open_gallery
from agent.pipelines.face.settings import FaceSettings
from agent.pipelines.shared import Shared
from agent.runtime import preflight
from agent.runtime.agent import Agent
from agent.runtime.commander import Commander
from agent.runtime.health import SystemProbe, health_payload, status_payload
from agent.runtime.member_sync import MemberSync, members_filter, open_recorder
from agent.runtime.metrics import MetricsServer
from agent.runtime.notify import Notifier
from agent.runtime.sink import EventSink, FanoutSink
from agent.runtime.state import StateStore
from agent.runtime.trust import TerminalTrust, load_trust
from agent.runtime.upkeep import Upkeep
from agent.storage import StorageMonitor, StorageState
from models.runtime import set_progress_hook

logger = logging.getLogger(__name__)

#: How often pending member announcements (identity.sync) are turned into events.
ANNOUNCE_INTERVAL_S = 1.0
#: At a stop on a failing disk, how long the broker may take to confirm the events published from memory.
RESCUE_S = 3.0
#: Sections a reload cannot change in place (they name the terminal, its broker or its files).
RESTART_SECTIONS = ("store", "terminal", "mqtt", "storage", "trust")
#: ``run`` exits with this when a pushed config needs a restart (sysexits EX_TEMPFAIL; systemd restarts it).
EXIT_RESTART = 75


class LentSink:
    """Lends the long-lived sink to one agent: the agent's ``close`` flushes it but does not close it."""

    def __init__(self, sink: EventSink, outbox: Outbox) -> None:
        self.sink = sink
        self.outbox = outbox

    def accept(self, event: Event) -> None:
        self.sink.accept(event)

    def close(self) -> None:
        # A failing disk will not take them now; the outbox's own close tries once more, within its time limit.
        self.outbox.flush(timeout=1.0 if self.outbox.failing else 30.0)


class Daemon:
    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        extra_sink: EventSink | None = None,
        replay: bool = False,
        notifier: Notifier | None = None,
    ) -> None:
        self.loaded = loaded
        self.extra_sink = extra_sink
        self.replay = replay
        self.notifier = notifier or Notifier()
        self.topics = Topics.for_config(loaded.config)
        self.stop_event = threading.Event()
        self.commands: CommandQueue = queue.Queue(maxsize=COMMAND_QUEUE)
        self.started_mono = time.monotonic()
        self.probe = SystemProbe()
        self.scrape_probe = SystemProbe()  # its own CPU window, so scrapes do not shorten health's
        self.home_assistant: HomeAssistantBridge | None = None
        self.metrics: MetricsServer | None = None
        self._stack = ExitStack()
        self._agent: Agent | None = None
        self._reloading = False
        #: What ``run`` exits with: 0, or EXIT_RESTART after a pushed config that only a restart applies.
        self.exit_code = 0
        self._stop_after_reply = threading.Event()

        self._storage_seen = 0
        self._storage_state = StorageState.OK

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        config = self.loaded.config
        # Secrets, gallery, models, counters: the first problem is one line and exit 78/69, before anything opens.
        preflight.raise_first(preflight.check(config, devices=False))
        state_dir = Path(config.storage.state_dir)
        self.storage = StorageMonitor(state_dir)
        self.state = StateStore(state_dir, self.storage)
        self.outbox = Outbox(
            state_dir / OUTBOX_FILE,
            config.storage.outbox,
            self.topics,
            expire_after_s=config.privacy.retention.events_days * 86400.0,
            anonymous_ids_s=config.privacy.retention.anonymous_track_s,
            storage=self.storage,
        )
        self._stack.callback(self.outbox.close)
        # Erasure (CLI, MQTT, consent expiry) also purges the member's queued events.
        register_erasure_hook(self.outbox.delete_member_events)
        self._stack.callback(unregister_erasure_hook, self.outbox.delete_member_events)
        self.home_assistant = self._home_assistant(self.loaded)
        extra = [s for s in (self.home_assistant, self.extra_sink) if s is not None]
        sink: EventSink = FanoutSink(self.outbox, *extra) if extra else self.outbox
        self.sink = LentSink(sink, self.outbox)
        for warning in config_warnings(config):
            logger.warning("%s", warning)
        self.trust: TerminalTrust = load_trust(config, state_dir)
        self._stack.callback(self.trust.close)
        unknown = sorted(set(config.trust.open_commands) - set(COMMANDS))
        if unknown:
            raise AgentError(
                f"trust.open_commands: unknown command(s) {', '.join(unknown)}; known: {', '.join(COMMANDS)}"
            )
        self.member_sync = self._member_sync(config, state_dir)
        boot = self.state.boot_count
        key_line = self.trust.terminal_key.line()
        self.publisher = Publisher(
            config.mqtt,
            self.topics,
            self.outbox,
            client_id=config.mqtt.client_id or f"{config.store.id}-{config.terminal.id}",
            birth=lambda: status_payload("online", self.loaded, boot, terminal_key=key_line),
            will=status_payload("offline", self.loaded, boot, "connection lost", terminal_key=key_line),
            commands=self.commands,
            sealer=self.trust.seal,
            hub_keys=self.trust.hub_keys,
            subscriptions=[members_filter(config.mqtt.topic_prefix, config.store.id)] if self.member_sync else [],
            on_message=self.member_sync.offer if self.member_sync else None,
        )
        self._stack.callback(self._stop_delivery, boot)
        self.publisher.start()
        # After the pipelines have stopped (their last events included), before the publisher goes offline.
        self._stack.callback(self._tick_integrations)
        # Model warm-up, TensorRT engine builds and the catalogue's embedding report progress: under systemd each
        # report extends TimeoutStartSec (EXTEND_TIMEOUT_USEC), so a slow board is not killed while it advances.
        startup.set_reporter(self._starting)
        set_progress_hook(startup.report)
        try:
            self._agent = self._start_agent(self.loaded)
        finally:
            startup.set_reporter(None)
            set_progress_hook(None)
        self._stack.callback(lambda: self.agent.close())
        prometheus = config.integrations.prometheus
        if prometheus.enabled:
            try:
                self.metrics = MetricsServer(prometheus.host, prometheus.port, self._scrape).start()
            except OSError as exc:
                raise AgentError(
                    f"integrations.prometheus: cannot listen on {prometheus.host}:{prometheus.port}: {exc.strerror}"
                ) from None
            self._stack.callback(self.metrics.close)
        self.commander = Commander(self.commands, self._run_command, self._reply, self._time_limit, self.stop_event)
        self.commander.start()
        self.upkeep = Upkeep(config.identity.upkeep_interval_s, self._upkeep_gallery, threading.Event()).start()
        self._stack.callback(self.upkeep.stop)
        if self.member_sync is not None:
            self.member_sync.start()
            self._stack.callback(self.member_sync.stop)
        self.notifier.send("READY=1", f"STATUS={self.status_line()}")
        logger.info("daemon ready; publishing to %s:%d under %s/", config.mqtt.host, config.mqtt.port, self.topics.base)

    def _member_sync(self, config: StoreConfig, state_dir: Path) -> MemberSync | None:
        """Store-wide members (``identity.sync``): the recorder enrolments and erasures write to, and the service
        that announces and imports; None when sync is off."""
        opened = open_recorder(config, state_dir)
        if opened is None:
            return None
        recorder, key = opened
        self._stack.callback(recorder.journal.close)
        set_recorder(recorder)
        self._stack.callback(set_recorder, None)
        face = config.pipelines.settings(FaceSettings)
        return MemberSync(
            recorder,
            key,
            self.trust.hub_keys,
            # No face pipeline and no gallery yet: the terminal takes members' cards, not their templates.
            open_gallery=lambda: (
                open_gallery(face, state_dir) if face.enabled or gallery_path(state_dir).exists() else None
            ),
            shared_gallery=lambda: self.shared().gallery if self.shared() is not None else None,  # type: ignore[union-attr]
            emit=lambda body: self.agent.emit(body),
            flush=lambda: self.outbox.flush(10.0),
            topic_prefix=config.mqtt.topic_prefix,
        )

    def _upkeep_gallery(self) -> tuple[Gallery, bool] | None:
        """The face pipeline's gallery, else the terminal's gallery file opened for one round (closed after), else
        None: a terminal that never enrolled anyone has no consent to expire and no chain to check."""
        shared = self.shared()
        if shared is not None and shared.gallery is not None and not self._reloading:
            return shared.gallery, False
        state_dir = Path(self.loaded.config.storage.state_dir)
        if not gallery_path(state_dir).exists():
            return None
        return open_gallery(self.loaded.config.pipelines.settings(FaceSettings), state_dir), True

    def _starting(self, status: str, extend_s: float) -> None:
        logger.debug("start-up: %s", status)
        self.notifier.extend(status, extend_s)

    def _home_assistant(self, loaded: LoadedConfig) -> HomeAssistantBridge | None:
        """The Home Assistant bridge when ``integrations.home_assistant`` is on: zones from the people scenes."""
        from agent.pipelines.people.settings import PeopleSettings

        config = loaded.config
        settings = config.integrations.home_assistant
        if not settings.enabled:
            return None
        people = config.pipelines.settings(PeopleSettings)
        zones = [
            ZoneSpec(camera, zone.name, zone.queue)
            for camera, scene in (people.scenes.items() if people.enabled else ())
            for zone in scene.zones
        ]
        bridge = HomeAssistantBridge(
            self.topics,
            store_name=config.store.name,
            location=config.terminal.location,
            zones=zones,
            discovery_prefix=settings.discovery_prefix,
            member_sensor=settings.member_sensor,
        )
        register_erasure_hook(bridge.forget_member)
        self._stack.callback(unregister_erasure_hook, bridge.forget_member)
        return bridge

    def _ha_publish(self, topic: str, payload: dict[str, Any], retain: bool) -> bool:
        """Discovery configs go out as Home Assistant reads them (no MAC member); state like any status."""
        assert self.home_assistant is not None
        if topic.startswith(f"{self.home_assistant.prefix}/"):
            return self.publisher.conn.publish(topic, encode(payload), qos=1, retain=retain) is not None
        return self.publisher.publish_json(topic, payload, retain)

    def _scrape(self) -> dict[str, Any] | None:
        """The health figures for a Prometheus scrape (None while the pipelines restart)."""
        if self._agent is None or self._reloading:
            return None
        return self.health(self.scrape_probe)

    def _stop_delivery(self, boot: int) -> None:
        """Before the publisher goes: events a failing disk never took are published from memory (the hub de-
        duplicates), so a stop on a full or read-only disk loses only what the broker does not confirm."""
        waiting = self.outbox.take_unwritten()
        if waiting:
            confirmed = self.publisher.send_direct([(item[1], item[2]) for item in waiting], RESCUE_S)
            self.outbox.settle_unwritten(waiting, confirmed)
        self.publisher.stop(offline=status_payload("offline", self.loaded, boot, "stopped"))

    def _start_agent(self, loaded: LoadedConfig) -> Agent:
        agent = Agent(loaded, self.sink, replay=self.replay, state=self.state)
        try:
            agent.start()
        except BaseException:
            agent.close()
            raise
        return agent

    @property
    def agent(self) -> Agent:
        assert self._agent is not None, "daemon not started"
        return self._agent

    def close(self) -> None:
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        self.stop_event.set()
        self._stack.close()

    def __enter__(self) -> Daemon:
        try:
            self.start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the main loop ------------------------------------------------------------------------

    def serve(self, until: Callable[[], bool] | None = None) -> None:
        """Commands, health and the watchdog until stopped (or ``until()`` is true)."""
        interval = self.loaded.config.mqtt.health_interval_s
        next_health = time.monotonic() + min(2.0, interval)
        watchdog = self.notifier.watchdog_interval_s
        next_watchdog = time.monotonic() if watchdog else float("inf")
        next_announce = time.monotonic()
        while not self.stop_event.is_set() and not (until is not None and until()):
            wait = max(0.0, min(next_health, next_watchdog, time.monotonic() + 0.5) - time.monotonic())
            self.stop_event.wait(wait)
            self.commander.police()
            if self.storage.generation != self._storage_seen:
                self.report_storage()
            now = time.monotonic()
            if self.member_sync is not None and now >= next_announce and not self._reloading:
                next_announce = now + ANNOUNCE_INTERVAL_S
                self.member_sync.announce(clock.now())
            if now >= next_health and not self._reloading:
                next_health = now + interval
                self.publish_health()
            self._tick_integrations()
            if watchdog and now >= next_watchdog:
                next_watchdog = now + watchdog
                if self.healthy():
                    self.notifier.send("WATCHDOG=1", f"STATUS={self.status_line()}")
                else:
                    logger.warning("not petting the watchdog: %s", self.status_line())

    def report_storage(self) -> None:
        """A storage change: a ``storage.state`` event into the outbox, and at once to the broker while the disk
        fails (the outbox cannot send it before the disk takes it)."""
        self._storage_seen = self.storage.generation
        state, reason = self.storage.state()
        stats = self.outbox.stats()
        if state is self._storage_state and state is StorageState.OK:
            return
        body = StorageStateChanged(
            captured_at=clock.now(),
            path=str(self.storage.directory),
            state=state.value,
            previous=self._storage_state.value,
            reason=reason,
            waiting_in_memory=int(stats["pending"]),
            dropped_for_memory=sum(stats["dropped"].get("memory", {}).values()),
        )
        self._storage_state = state
        event = self.agent.emit(body) if self._agent is not None else None
        if event is not None and state is not StorageState.OK:
            self.publisher.publish_json(self.topics.event(event.type), event.to_payload())
        self.notifier.send(f"STATUS={self.status_line()}")

    def _run_command(self, request: CommandRequest) -> dict[str, Any]:
        return handle(COMMANDS, self, self.trust.authority, request)

    def _reply(self, name: str, payload: dict[str, Any]) -> None:
        self.publisher.publish_json(self.topics.reply(name), payload)
        if self._stop_after_reply.is_set():  # the reply goes out before the disconnect that stopping sends
            self.stop_event.set()

    def _time_limit(self, name: str) -> float:
        entry = COMMANDS.get(name)
        return entry.time_limit_s if entry is not None else 30.0

    def healthy(self) -> bool:
        if self._reloading:  # a reload restarts the pipelines on the command thread; the daemon itself is fine
            return self.publisher.alive()
        return self.agent.watchdog_ok() and self.publisher.alive() and self.commander.thread.is_alive()

    def status_line(self) -> str:
        delivery = self.publisher.delivery_state()
        if delivery == "disconnected":
            link = f"broker unreachable ({self.publisher.conn.last_error})"
        else:
            link = "connected" if delivery == "ok" else f"connected, {delivery}"
        sources = len(self._agent.sources) if self._agent else 0
        state, reason = self.storage.state()
        disk = "" if state is StorageState.OK else f", storage {state} ({reason})"
        return f"{sources} devices, MQTT {link}, outbox {self.outbox.rows} events{disk}"

    def health(self, probe: SystemProbe | None = None) -> dict[str, Any]:
        return health_payload(
            self.loaded,
            self.agent.health(),
            self.outbox.stats(),
            self.publisher.stats(),
            (probe or self.probe).read(),
            self.agent.watchdog_ok(),
            self.commander.stats(),
            storage=self.storage.stats(),
            member_sync=self.member_sync.health() if self.member_sync is not None else None,
            audit=self.upkeep.health(),
        )

    def publish_health(self) -> bool:
        return self.publisher.publish_json(self.topics.health, self.health(), retain=True)

    def replay_to_end(self, timeout: float) -> tuple[bool, bool]:
        """Replay/demo: serve until every source is exhausted (or stopped, or ``timeout``), close the pipelines,
        then wait for the broker to acknowledge everything accepted.

        Returns (every source was exhausted, nothing is left in the outbox).
        """
        started = time.monotonic()
        self.serve(until=lambda: self.agent.wait_finished(0) or time.monotonic() - started > timeout)
        finished = self.agent.wait_finished(0)
        self.agent.close()
        self._tick_integrations()  # what the pipelines concluded on the way down
        if self.stop_event.is_set():  # SIGTERM: what was accepted is durable in the outbox; do not linger
            return finished, self.wait_delivered(1.0)
        delivered = self.wait_delivered(max(5.0, timeout - (time.monotonic() - started)))
        self._tick_integrations()
        return finished, delivered

    def _tick_integrations(self) -> None:
        if self.home_assistant is not None:
            self.home_assistant.tick(self._ha_publish, self.publisher.conn.connects, self.publisher.connected)

    def wait_delivered(self, timeout: float) -> bool:
        """Replay/demo: wait until everything accepted has left the outbox (acknowledged)."""
        deadline = time.monotonic() + timeout
        self.outbox.flush(timeout)
        return self.outbox.wait_empty(max(0.0, deadline - time.monotonic()))

    # --- CommandHost ----------------------------------------------------------------------------

    def shared(self) -> Shared | None:
        return self._agent.shared if self._agent is not None else None

    def uptime_s(self) -> float:
        return time.monotonic() - self.started_mono

    def boot_count(self) -> int:
        return self.state.boot_count

    def apply_config(self, text: str, base_text: str | None, restart: bool) -> dict[str, Any]:
        """A config pushed by the hub: validated whole, written (old files kept as ``.previous``), then applied in
        place, or, where it changes what only a restart applies and ``restart`` allows it, by a restart (exit 75,
        which systemd's Restart=on-failure turns into a start with the new files)."""
        try:
            push = check_push(self.loaded, text, base_text)
        except (ConfigError, PushError) as exc:
            raise CommandFailed(f"refused, nothing written, the running config is kept:\n{exc}") from None
        if push.sha256 == self.loaded.sha256:
            return {"applied": False, "config_sha256": push.sha256, "reason": "already running this config"}
        changed = [s for s in RESTART_SECTIONS if getattr(push.config, s) != getattr(self.loaded.config, s)]
        if changed and not restart:
            raise CommandFailed(
                f"{', '.join(changed)} changed, which only a restart applies: push again with restart: true; "
                "nothing written, the running config is kept"
            )
        write_push(push)
        if changed:
            logger.warning("config pushed (sha256 %s) changes %s: restarting", push.sha256[:12], ", ".join(changed))
            self.exit_code = EXIT_RESTART
            self._stop_after_reply.set()
            return {"applied": True, "restart": True, "config_sha256": push.sha256, "changed": changed}
        try:
            result = self.reload_config()
        except CommandFailed:
            restore_previous(push)
            raise
        return {"applied": True, "restart": False, **result}

    def reload_config(self) -> dict[str, Any]:
        try:
            new = load_config(self.loaded.path)
        except ConfigError as exc:
            raise CommandFailed(f"invalid config, the running one is kept:\n{exc}") from None
        changed = [s for s in RESTART_SECTIONS if getattr(new.config, s) != getattr(self.loaded.config, s)]
        if changed:
            raise CommandFailed(
                f"{', '.join(changed)} changed: restart the service to apply; the running config is kept"
            )
        if new.sha256 == self.loaded.sha256:
            return {"changed": False, "config_sha256": new.sha256}
        old = self.loaded
        self._reloading = True
        try:
            self.agent.close()
            try:
                self._agent = self._start_agent(new)
            except Exception as exc:
                logger.exception("the new config failed to start; going back to the previous one")
                self._agent = self._start_agent(old)
                raise CommandFailed(f"the new config failed to start ({exc}); the previous config runs again") from None
        finally:
            self._reloading = False
        self.loaded = new
        status = status_payload("online", new, self.state.boot_count, terminal_key=self.trust.terminal_key.line())
        self.publisher.publish_json(self.topics.status, status, True)
        logger.info("config reloaded (sha256 %s)", new.sha256[:12])
        return {"changed": True, "config_sha256": new.sha256, "pipelines": new.config.pipelines.enabled_names()}
