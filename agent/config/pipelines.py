"""The ``pipelines:`` section, assembled from the pipeline registry the way device lists are from the drivers.

Each registered pipeline contributes one key whose model is its settings
class, so a new pipeline is accepted by the config as soon as it is in
``agent/pipelines/registry.py``. Code outside a pipeline reads its settings
typed with ``config.pipelines.settings(FaceSettings)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model

from agent.pipelines.base import ConfiguredDevices, PipelineSettings
from agent.pipelines.registry import configurable

S = TypeVar("S", bound=PipelineSettings)


class PipelinesBase(BaseModel):
    """What every assembled ``pipelines:`` model offers besides one field per pipeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def sections(self) -> dict[str, PipelineSettings]:
        """Each pipeline's settings by name, in registry order."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def enabled_names(self) -> list[str]:
        return [name for name, settings in self.sections().items() if settings.enabled]

    def settings(self, cls: type[S]) -> S:
        """The settings of the pipeline whose model is ``cls`` (typed, for code outside that pipeline)."""
        for value in self.sections().values():
            if type(value) is cls:
                return value
        raise KeyError(f"no pipeline has settings {cls.__name__}")

    def required_models(self) -> dict[str, list[str]]:
        """Manifest model name -> the enabled pipelines that load it: what this terminal must have provisioned."""
        needed: dict[str, list[str]] = {}
        for name, settings in self.sections().items():
            if settings.enabled:
                for model in settings.model_names():
                    needed.setdefault(model, []).append(name)
        return needed

    def check_references(self, devices: ConfiguredDevices) -> None:
        """Every device a pipeline names must be configured, and enabled when the pipeline is."""
        for name, settings in self.sections().items():
            settings.check_sources(name, devices)


def _assemble() -> type[PipelinesBase]:
    fields: dict[str, Any] = {
        p.name: (p.settings, Field(default_factory=p.settings, description=p.description)) for p in configurable()
    }
    return create_model("PipelinesConfig", __base__=PipelinesBase, __doc__=__doc__, **fields)


if TYPE_CHECKING:
    PipelinesConfig = PipelinesBase
else:
    PipelinesConfig = _assemble()
