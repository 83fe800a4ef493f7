"""The pipelines the agent can run, in the order they appear under ``pipelines:`` (and are built).

Adding a pipeline is one package under ``agent/pipelines/`` exporting ``PLUGIN``
plus one line here (docs/architecture.md walks through it). The store
config's ``pipelines:`` section, the event-type table (schemas, docs) and the
runtime's build loop all read this list.
"""

from __future__ import annotations

from typing import Any

from agent.events import DeviceStateChanged, EventBody, StorageStateChanged
from agent.identity.sync import MemberEnrolled, MemberErased
from agent.pipelines import face, motion, people, product, serial, speech
from agent.pipelines.base import PipelinePlugin

PLUGINS: tuple[PipelinePlugin[Any], ...] = (
    serial.PLUGIN,
    motion.PLUGIN,
    face.PLUGIN,
    people.PLUGIN,
    speech.PLUGIN,
    product.PLUGIN,
)


#: Every event type the agent emits: the runtime's own, then each pipeline's. Schemas and docs are checked
#: against this table.
def _event_table() -> dict[str, type[EventBody]]:
    table: dict[str, type[EventBody]] = {}
    types: list[type[EventBody]] = [
        DeviceStateChanged,
        StorageStateChanged,
        MemberEnrolled,
        MemberErased,
        *(t for p in PLUGINS for t in p.event_types),
    ]
    for cls in types:
        if cls.TYPE in table:
            raise ValueError(f"event type {cls.TYPE!r} is declared twice")
        table[cls.TYPE] = cls
    return table


EVENT_TYPES = _event_table()


def configurable() -> list[PipelinePlugin[Any]]:
    """The plugins that have a section under ``pipelines:`` (every one but the always-on serial events)."""
    return [p for p in PLUGINS if not p.always_on]


def plugin(name: str) -> PipelinePlugin[Any]:
    for p in PLUGINS:
        if p.name == name:
            return p
    raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(p.name for p in PLUGINS)}")
