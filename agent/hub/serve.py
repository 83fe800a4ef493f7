"""N cooperating hub consumers of the chain broker: a supervisor of worker processes, and the worker itself.

``store-agent hub serve --processes N`` (agent.cli.serve_cmd) runs :func:`supervise` over N worker processes (the
same command line with ``--worker i``), each running :func:`work`: one ``agent.hub.consumer.Consumer`` in the shared
subscription group, all writing the one event store ``<state-dir>/events.sqlite3``. A worker that dies is started
again after a second; what it had not acknowledged is sent again by the terminals and taken by the others
meanwhile. Process i connects with client id ``<base>-<i>`` and, when ``mqtt.username`` is set, logs in as
``<mqtt.username>-<i>`` with the one password (the accounts ``store-agent broker chain --hub-processes N``
makes), because the chain broker binds each connection's client id to its account.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.config.schema import MqttSection
from agent.hub.consumer import Consumer, consumer_client_id, store_path
from agent.hub.store import EventStore
from agent.trust.keys import HubPrivateKey
from agent.trust.messages import TerminalRegistry

logger = logging.getLogger(__name__)

STATS_INTERVAL_S = 10.0
RESTART_DELAY_S = 1.0
REGISTRY_CHECK_S = 2.0


def supervise(argv_of: Callable[[int], list[str]], processes: int, group: str, stop: threading.Event) -> int:
    """Run ``processes`` workers (``argv_of(i)``) until ``stop``, starting again any that exits; 0 when stopped."""
    workers: dict[int, subprocess.Popen[bytes]] = {}
    restarts = 0
    started_at: dict[int, float] = {}

    def spawn(index: int) -> None:
        workers[index] = subprocess.Popen(argv_of(index))
        started_at[index] = time.monotonic()

    for index in range(processes):
        spawn(index)
    print(f"hub serve: {processes} consumers in group {group!r}", file=sys.stderr, flush=True)
    while not stop.wait(0.2):
        for index, proc in list(workers.items()):
            code = proc.poll()
            if code is None or time.monotonic() - started_at[index] < RESTART_DELAY_S:
                continue
            restarts += 1
            print(f"hub serve: consumer {index} exited with {code}; starting it again", file=sys.stderr, flush=True)
            spawn(index)
    for proc in workers.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers.values():
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    print(f"hub serve: stopped ({restarts} consumer restarts)", file=sys.stderr, flush=True)
    return 0


def work(
    settings: MqttSection,
    hub_key: HubPrivateKey,
    registry_file: Path,
    state_dir: Path,
    *,
    group: str,
    client_id_base: str,
    index: int,
    stop: threading.Event,
) -> int:
    """One consumer until ``stop``; takes terminals registered meanwhile from ``registry_file``."""
    if settings.username:
        settings = settings.model_copy(update={"username": f"{settings.username}-{index}"})
    client_id = consumer_client_id(client_id_base, index)
    registry = TerminalRegistry.load(registry_file)
    store = EventStore(store_path(state_dir), client_id)
    consumer = Consumer(settings, hub_key, registry, store, group=group, client_id=client_id)
    mtime = _mtime(registry_file)
    consumer.start()
    try:
        if consumer.subscribed.wait(30):
            print(
                f"hub consumer {index} ({client_id}) subscribed: $share/{group}/{settings.topic_prefix}/+/+/events/+",
                file=sys.stderr,
                flush=True,
            )
        next_stats = time.monotonic() + STATS_INTERVAL_S
        while not stop.wait(REGISTRY_CHECK_S):
            changed = _mtime(registry_file)
            if changed != mtime:  # a terminal registered since (hub register): take its key
                mtime = changed
                registry.keys.update(TerminalRegistry.load(registry_file).keys)
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + STATS_INTERVAL_S
                logger.info("hub consumer %d: %s", index, consumer.stats)
    finally:
        consumer.stop()
        store.close()
    print(f"hub consumer {index} stopped: {consumer.stats}", file=sys.stderr, flush=True)
    return 0


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
