"""Maps a pipeline name in ``pipelines:`` to the function that builds its per-source stages.

A builder is ``build(config, context) -> list[Pipeline]``: one stage per source
it reads. Adding a pipeline is one line here plus its settings class in
``agent/config/pipelines.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.config.schema import StoreConfig
    from agent.runtime.pipeline import Pipeline, RuntimeContext

PIPELINES: dict[str, str] = {
    "serial-events": "agent.pipelines.serial_events:build",
    "motion": "agent.pipelines.motion:build",
    "face": "agent.face.pipeline:build",
    "speech": "agent.speech.build:build",
    "people": "agent.scene.pipeline:build",
    "product": "agent.product.pipeline:build",
}

Builder = Callable[["StoreConfig", "RuntimeContext"], "list[Pipeline[Any]]"]


def available() -> list[str]:
    return sorted(PIPELINES)


def builder(name: str) -> Builder:
    module_name, _, func = PIPELINES[name].partition(":")
    fn: Builder = getattr(importlib.import_module(module_name), func)
    return fn
