"""What a pipeline is to the runtime: a per-source stage that turns items into event bodies.

The runtime gives each (pipeline, source) pair its own worker thread and
bounded queue; the worker calls ``process`` for every item and hands the
returned bodies to delivery. A pipeline never sees another pipeline's queue and
never polls: it only returns what it concluded.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic

from agent.events import EventBody
from drivers.base import ItemT
from drivers.registry import DeviceKind

if TYPE_CHECKING:
    from agent.config.schema import StoreConfig


@dataclass
class RuntimeContext:
    """What pipelines share: the validated config, paths, and process-wide services.

    ``services`` holds single-owner objects that several pipelines use (the
    identity gallery, the fusion state), created once by the pipeline that owns
    them via ``service(name, factory, close)``. The agent closes the context
    after its pipelines: each service's ``close`` runs once, newest first.
    """

    config: StoreConfig
    state_dir: Path
    models_dir: Path
    services: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def service(self, name: str, factory: Callable[[], Any], close: Callable[[Any], None] | None = None) -> Any:
        if name not in self.services:
            obj = self.services[name] = factory()
            if close is not None:
                self._closers.append(lambda: close(obj))
        return self.services[name]

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()


class Pipeline(ABC, Generic[ItemT]):
    """One pipeline attached to one source. Called from a single worker thread."""

    #: Which kind of device feeds this pipeline; decides the queue's drop policy.
    source_kind: ClassVar[DeviceKind]

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
        """Pipeline-specific counters for ``health`` (e.g. utterances dropped whole); JSON-ready."""
        return {}

    def finish(self) -> Iterable[EventBody]:
        """The source ended or the agent is stopping: conclude what is open (tracks, utterances)."""
        return ()

    def close(self) -> None:
        """Release what ``warm_up`` acquired."""
