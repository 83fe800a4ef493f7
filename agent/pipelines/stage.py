"""What a pipeline is to the runtime: per-source stages that turn items into event bodies.

A pipeline's ``build`` returns one :class:`Stage` per source it reads. The
runtime gives each stage its own worker thread and bounded queue (the policy
follows the source's kind: latest-wins video, drop-newest audio, never-drop
serial); the worker calls ``process`` for every item and hands the returned
bodies to delivery. A stage never sees another stage's queue and never polls:
it only returns what it concluded. What stages of different pipelines share
goes through :class:`agent.pipelines.shared.Shared`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Generic

from agent.events import EventBody
from drivers.base import ItemT


class Stage(ABC, Generic[ItemT]):
    """One pipeline attached to one source. Called from a single worker thread."""

    #: The load-shedding steps this stage can take when the board falls behind (agent/config/overload.py).
    SHED_STEPS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.logger = logging.getLogger(f"agent.pipeline.{name}.{source}")
        #: The shedding steps in force (set by the overload controller's thread; read on the next item).
        self.shedding: frozenset[str] = frozenset()

    def shed(self, step: str, active: bool) -> None:
        """Take (``active``) or undo one of ``SHED_STEPS``; it applies from the next item on."""
        if step in self.SHED_STEPS:
            self.shedding = self.shedding | {step} if active else self.shedding - {step}

    def warm_up(self) -> None:
        """Load models and run them once; called before the agent reports ready."""

    @abstractmethod
    def process(self, item: ItemT) -> Iterable[EventBody]:
        """Handle one item; return the events it concluded (often none)."""

    def health(self) -> dict[str, Any]:
        """Stage-specific counters for ``health`` (e.g. utterances dropped whole); JSON-ready."""
        return {}

    def finish(self) -> Iterable[EventBody]:
        """The source ended or the agent is stopping: conclude what is open (tracks, utterances)."""
        return ()

    def close(self) -> None:
        """Release what ``warm_up`` acquired."""
