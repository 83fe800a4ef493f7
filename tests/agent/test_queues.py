"""Drop policies: latest-wins for video, drop-newest for audio, never-drop for serial, back-pressure for replay."""

from __future__ import annotations

import threading
import time

import pytest

from agent.runtime.queues import DropPolicy, QueueClosed, StageQueue


def test_latest_wins_keeps_the_newest_and_counts_stale() -> None:
    q: StageQueue[int] = StageQueue("video", 2, DropPolicy.LATEST_WINS)
    stop = threading.Event()
    for i in range(5):
        assert q.put(i, stop)
    assert [q.get(0.1), q.get(0.1)] == [3, 4]
    assert q.stats()["dropped"] == {"stale": 3}
    assert q.get(0.01) is None


def test_drop_newest_keeps_what_it_has() -> None:
    q: StageQueue[int] = StageQueue("audio", 3, DropPolicy.DROP_NEWEST)
    stop = threading.Event()
    results = [q.put(i, stop) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert [q.get(0.1) for _ in range(3)] == [0, 1, 2]
    assert q.stats()["dropped"] == {"overflow": 2}


def test_never_drop_waits_for_space() -> None:
    q: StageQueue[int] = StageQueue("serial", 1, DropPolicy.NEVER_DROP)
    stop = threading.Event()
    assert q.put(1, stop)
    done = threading.Event()

    def producer() -> None:
        q.put(2, stop)
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.3)  # blocked while full
    assert q.get(0.1) == 1
    assert done.wait(2.0)
    assert q.get(0.1) == 2
    assert q.stats()["dropped"] == {}
    assert q.stats()["blocked_s"] > 0


def test_backpressure_turns_latest_wins_lossless() -> None:
    q: StageQueue[int] = StageQueue("replay", 1, DropPolicy.LATEST_WINS, backpressure=True)
    stop = threading.Event()
    received: list[int] = []

    def consumer() -> None:
        while True:
            try:
                item = q.get(0.5)
            except QueueClosed:
                return
            if item is not None:
                time.sleep(0.001)
                received.append(item)

    thread = threading.Thread(target=consumer)
    thread.start()
    for i in range(200):
        q.put(i, stop)
    q.close()
    thread.join(5)
    assert received == list(range(200))
    assert q.stats()["dropped"] == {}


def test_stop_releases_a_blocked_producer() -> None:
    q: StageQueue[int] = StageQueue("serial", 1, DropPolicy.NEVER_DROP)
    stop = threading.Event()
    q.put(1, stop)
    threading.Timer(0.2, stop.set).start()
    assert q.put(2, stop) is False
    assert q.stats()["dropped"] == {"shutdown": 1}


def test_closed_queue_drains_then_raises() -> None:
    q: StageQueue[int] = StageQueue("x", 4, DropPolicy.DROP_NEWEST)
    stop = threading.Event()
    q.put(1, stop)
    q.close()
    assert q.get(0.1) == 1
    with pytest.raises(QueueClosed):
        q.get(0.1)
    assert q.put(2, stop) is False
