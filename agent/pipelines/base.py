"""What every pipeline plugin declares: its settings model, its event types and where its ``build`` lives.

A pipeline is one package under ``agent/pipelines/<name>/`` whose ``__init__``
exports ``PLUGIN`` (a :class:`PipelinePlugin`) and imports nothing heavy: the
config validates on any machine, and ``build`` (which loads models) is imported
only when the pipeline is enabled. ``agent/pipelines/registry.py`` lists the
plugins; the ``pipelines:`` section of the store YAML is assembled from it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from agent.events import EventBody
from drivers.registry import DeviceKind

if TYPE_CHECKING:
    from agent.pipelines.shared import Shared
    from agent.pipelines.stage import Stage
    from drivers.base import DeviceOptions


class ConfiguredDevices(Protocol):
    """The part of the store config a pipeline's settings are checked against (the devices it may name)."""

    def device_names(self, kind: DeviceKind, include_disabled: bool = False) -> set[str]: ...

    def device_entries(self, kind: DeviceKind) -> list[tuple[str, DeviceOptions]]:
        """Every entry of the kind's section with its YAML path, e.g. ``("microphones[0]", options)``."""
        ...


class PipelineSettings(BaseModel):
    """Base of a pipeline's settings: ``enabled`` plus the fields that name its sources."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = Field(False, description="Run this pipeline.")

    #: Fields that list source device names, and the kind of device each names.
    SOURCE_FIELDS: ClassVar[dict[str, DeviceKind]] = {}

    def model_names(self) -> list[str]:
        """The model-manifest entries this pipeline loads with these settings (for `models fetch` and `doctor`)."""
        return []

    def check_sources(self, name: str, devices: ConfiguredDevices) -> None:
        """Every device named must be configured, and enabled when the pipeline is; raises ValueError with the path."""
        for field_name, kind in self.SOURCE_FIELDS.items():
            known = devices.device_names(kind, include_disabled=not self.enabled)
            state = "enabled " if self.enabled else ""
            for i, source in enumerate(getattr(self, field_name)):
                if source not in known:
                    raise ValueError(
                        f"pipelines.{name}.{field_name}[{i}]: no {state}{kind} named {source!r} "
                        f"(configured: {', '.join(sorted(known)) or 'none'})"
                    )


SettingsT = TypeVar("SettingsT", bound=PipelineSettings)
Builder = Callable[[SettingsT, "Shared"], "list[Stage[Any]]"]


@dataclass(frozen=True)
class PipelinePlugin(Generic[SettingsT]):
    """One pipeline: its key under ``pipelines:``, settings model, ``build`` and the event types it emits.

    ``build`` is ``"module:function"``; the function takes the pipeline's
    settings and the :class:`~agent.pipelines.shared.Shared` services and
    returns one stage per source. ``always_on`` pipelines (serial events) have
    no section in the YAML and run with their default settings.
    """

    name: str
    settings: type[SettingsT]
    build: str
    event_types: tuple[type[EventBody], ...] = ()
    always_on: bool = False

    def builder(self) -> Builder[SettingsT]:
        module_name, _, func = self.build.partition(":")
        fn: Builder[SettingsT] = getattr(importlib.import_module(module_name), func)
        return fn

    @property
    def description(self) -> str:
        return (self.settings.__doc__ or self.name).strip().splitlines()[0]
