"""Maps a device's ``type:`` in the store YAML to the driver class that implements it.

Entries are ``"module:Class"`` strings imported on first use, so adding a
driver is one line here and a module that imports nothing heavy at top level
(the approach of gpiozero's pin factories and mqtt-io's modules).
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from drivers.base import DeviceOptions, Driver

DeviceKind = Literal["camera", "microphone", "serial"]

REGISTRY: dict[DeviceKind, dict[str, str]] = {
    "camera": {
        "video-file": "drivers.camera.replay:VideoFileCamera",
        "image-folder": "drivers.camera.replay:ImageFolderCamera",
        "test-pattern": "drivers.camera.pattern:TestPatternCamera",
    },
    "microphone": {
        "wav-file": "drivers.audio.replay:WavFileMicrophone",
    },
    "serial": {},
}


def driver_types(kind: DeviceKind) -> list[str]:
    """The ``type:`` values accepted for one kind of device."""
    return sorted(REGISTRY[kind])


def driver_class(kind: DeviceKind, type_name: str) -> type[Driver[Any, Any]]:
    """Import and return the driver class registered for ``type_name``."""
    try:
        target = REGISTRY[kind][type_name]
    except KeyError:
        raise KeyError(f"unknown {kind} type {type_name!r}; known types: {', '.join(driver_types(kind))}") from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Driver[Any, Any]] = getattr(module, class_name)
    return cls


def options_models(kind: DeviceKind) -> list[type[DeviceOptions]]:
    """The settings models of every registered driver of ``kind`` (imports their modules)."""
    return [driver_class(kind, name).Options for name in driver_types(kind)]


def create_driver(kind: DeviceKind, options: DeviceOptions) -> Driver[Any, Any]:
    """Instantiate the driver for already-validated ``options``."""
    return driver_class(kind, options.type)(options)  # type: ignore[attr-defined]
