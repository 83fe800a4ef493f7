"""Maps a device's ``type:`` in the store YAML to its settings model and the driver class that implements it.

Entries are ``("module:Options", "module:Driver")`` strings imported on first
use. The settings model lives where importing it is cheap (camera options in
``drivers/camera/options.py``, without OpenCV), so validating a config never
imports a driver; the driver is imported only when a device is created. Adding
a driver is one line here (the approach of gpiozero's pin factories and
mqtt-io's modules).
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from drivers.base import DeviceOptions, Driver, SerialKind

DeviceKind = Literal["camera", "microphone", "serial"]

REGISTRY: dict[DeviceKind, dict[str, tuple[str, str]]] = {
    "camera": {
        "video-file": ("drivers.camera.options:VideoFileOptions", "drivers.camera.replay:VideoFileCamera"),
        "image-folder": ("drivers.camera.options:ImageFolderOptions", "drivers.camera.replay:ImageFolderCamera"),
        "test-pattern": ("drivers.camera.options:TestPatternOptions", "drivers.camera.pattern:TestPatternCamera"),
        "v4l2": ("drivers.camera.options:V4l2Options", "drivers.camera.v4l2:V4l2Camera"),
        "rtsp": ("drivers.camera.options:RtspOptions", "drivers.camera.rtsp:RtspCamera"),
        "picamera2": ("drivers.camera.options:Picamera2Options", "drivers.camera.picamera2:Picamera2Camera"),
        "gstreamer": ("drivers.camera.options:GStreamerOptions", "drivers.camera.gstreamer:GStreamerCamera"),
    },
    "microphone": {
        "wav-file": ("drivers.audio.replay:WavFileOptions", "drivers.audio.replay:WavFileMicrophone"),
        "sounddevice": (
            "drivers.audio.sounddevice_mic:SoundDeviceOptions",
            "drivers.audio.sounddevice_mic:SoundDeviceMicrophone",
        ),
    },
    "serial": {
        "pn532": ("drivers.serial.pn532_reader:Pn532Options", "drivers.serial.pn532_reader:Pn532Reader"),
        "ascii-reader": ("drivers.serial.readers:AsciiReaderOptions", "drivers.serial.readers:AsciiCardReader"),
        "barcode": ("drivers.serial.readers:BarcodeOptions", "drivers.serial.readers:BarcodeScanner"),
    },
}


def _load(target: str) -> Any:
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


def _entry(kind: DeviceKind, type_name: str) -> tuple[str, str]:
    try:
        return REGISTRY[kind][type_name]
    except KeyError:
        raise KeyError(f"unknown {kind} type {type_name!r}; known types: {', '.join(driver_types(kind))}") from None


def driver_types(kind: DeviceKind) -> list[str]:
    """The ``type:`` values accepted for one kind of device."""
    return sorted(REGISTRY[kind])


def driver_class(kind: DeviceKind, type_name: str) -> type[Driver[Any, Any]]:
    """Import and return the driver class registered for ``type_name``."""
    cls: type[Driver[Any, Any]] = _load(_entry(kind, type_name)[1])
    return cls


def options_model(kind: DeviceKind, type_name: str) -> type[DeviceOptions]:
    """The settings model of ``type_name`` (imports no driver)."""
    cls: type[DeviceOptions] = _load(_entry(kind, type_name)[0])
    return cls


def options_models(kind: DeviceKind) -> list[type[DeviceOptions]]:
    """The settings models of every registered driver of ``kind``."""
    return [options_model(kind, name) for name in driver_types(kind)]


def serial_produces(options: DeviceOptions) -> SerialKind:
    """What a serial device reads: ``card`` taps or ``barcode`` scans (from its driver class)."""
    produces: SerialKind = driver_class("serial", options.type).produces  # type: ignore[attr-defined]
    return produces


def create_driver(kind: DeviceKind, options: DeviceOptions) -> Driver[Any, Any]:
    """Instantiate the driver for already-validated ``options``."""
    return driver_class(kind, options.type)(options)  # type: ignore[attr-defined]
