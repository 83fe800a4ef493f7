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
from typing import Any, Generic

from agent.events import EventBody
from drivers.base import ItemT


class Stage(ABC, Generic[ItemT]):
    """One pipeline attached to one source. Called from a single worker thread."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.logger = logging.getLogger(f"agent.pipeline.{name}.{source}")

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
