"""The overload controller's decisions over real workers and queues, on a clock the test moves: the order of the
steps, the time behind before each, recovery in reverse after the time keeping up, and no flapping."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from agent.config.overload import OverloadSection
from agent.events import EventBody
from agent.pipelines.stage import Stage
from agent.runtime.overload import OverloadController
from agent.runtime.queues import DropPolicy, StageQueue
from agent.runtime.worker import Worker


class Sheddable(Stage[int]):
    SHED_STEPS = ("people.detector_stride", "people.reid_rate")

    def process(self, item: int) -> Iterable[EventBody]:
        return ()


class Board:
    """One worker on a latest-wins queue of 2; ``tick`` offers frames, of which the worker processes ``keep``."""

    def __init__(self, settings: OverloadSection) -> None:
        self.stop = threading.Event()
        self.queue: StageQueue[int] = StageQueue("people/cam", 2, DropPolicy.LATEST_WINS)
        self.stage = Sheddable("people", "cam")
        self.worker = Worker(self.stage, self.queue, lambda body: None, self.stop)
        self.controller = OverloadController(settings, [self.worker], self.stop)
        self.controller.reset(0.0)
        self.now = 0.0

    def tick(self, offered: int, keep: int, seconds: float = 0.5) -> None:
        for i in range(offered):
            self.queue.put(i, self.stop)
            if i < keep and self.queue.get(0.0) is not None:
                self.worker.processed += 1
        while self.queue.get(0.0) is not None:  # what is left is processed late: the next frames drop
            pass
        self.now += seconds
        self.controller.evaluate(self.now)


def test_steps_in_order_then_undone_in_reverse() -> None:
    settings = OverloadSection(behind_after_s=2.0, recover_after_s=5.0)
    board = Board(settings)
    assert board.controller.steps == ["people.detector_stride", "people.reid_rate"]  # what this stage can take
    for _ in range(3):  # behind, but not yet for 2 s
        board.tick(offered=10, keep=2)
    assert board.controller.degraded() == []
    board.tick(offered=10, keep=2)
    assert board.controller.degraded() == ["people.detector_stride"]
    assert board.stage.shedding == {"people.detector_stride"}
    for _ in range(3):  # another full span behind before the next step
        board.tick(offered=10, keep=2)
    assert board.controller.degraded() == ["people.detector_stride"]
    board.tick(offered=10, keep=2)
    assert board.controller.degraded() == ["people.detector_stride", "people.reid_rate"]
    for _ in range(8):  # every step taken: nothing more to shed
        board.tick(offered=10, keep=2)
    assert board.controller.degraded() == ["people.detector_stride", "people.reid_rate"]

    for _ in range(8):  # keeping up (every frame processed): the behind checks are still over 10% of 5 s
        board.tick(offered=5, keep=5)
    assert board.controller.degraded() == ["people.detector_stride", "people.reid_rate"]
    for _ in range(2):
        board.tick(offered=5, keep=5)
    assert board.controller.degraded() == ["people.detector_stride"]  # the last step taken is undone first
    assert board.stage.shedding == {"people.detector_stride"}
    for _ in range(3):  # one isolated drop does not hold the recovery back
        board.tick(offered=5, keep=5)
    board.tick(offered=10, keep=9)
    for _ in range(4):
        board.tick(offered=5, keep=5)
    assert board.controller.degraded() == ["people.detector_stride"]  # a full span of 5 s under the change first
    for _ in range(4):
        board.tick(offered=5, keep=5)
    assert board.controller.degraded() == [] and board.stage.shedding == frozenset()
    actions = [(h["action"], h["step"]) for h in board.controller.health()["history"]]
    assert actions == [
        ("taken", "people.detector_stride"),
        ("taken", "people.reid_rate"),
        ("undone", "people.reid_rate"),
        ("undone", "people.detector_stride"),
    ]


def test_isolated_drops_neither_shed_nor_keep_load_shed() -> None:
    board = Board(OverloadSection(behind_after_s=2.0, recover_after_s=5.0))
    for i in range(40):  # a drop in one check of every five (a busy board's jitter): no step
        board.tick(offered=10, keep=9 if i % 5 == 0 else 10)
    assert board.controller.degraded() == []


def test_a_step_that_flaps_waits_twice_as_long() -> None:
    board = Board(OverloadSection(behind_after_s=1.0, recover_after_s=3.0, steps=["people.reid_rate"]))
    for _ in range(3):
        board.tick(offered=10, keep=2)
    assert board.controller.degraded() == ["people.reid_rate"]
    for _ in range(7):  # 3 s keeping up (after the check that starts the span): undone
        board.tick(offered=5, keep=5)
    assert board.controller.degraded() == []
    for _ in range(3):  # behind again at once: taken again, and its recovery now takes 6 s
        board.tick(offered=10, keep=2)
    assert board.controller.degraded() == ["people.reid_rate"]
    assert board.controller.health()["recover_after_s"] == {"people.reid_rate": 6.0}
    for _ in range(7):
        board.tick(offered=5, keep=5)
    assert board.controller.degraded() == ["people.reid_rate"]  # 3 s is no longer enough
    for _ in range(6):
        board.tick(offered=5, keep=5)
    assert board.controller.degraded() == []
