"""The small driver interface every device implements, and the values drivers produce.

A driver is opened, read with a timeout until it is closed, and may be reopened
after a failure. It never runs inference and never blocks forever: ``read``
returns ``None`` when nothing arrived within the timeout, raises
:class:`EndOfStream` when a replay source is exhausted, and raises
:class:`DeviceError` when the device failed (the runtime then closes it and
reopens it with backoff).
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from drivers.compat import StrEnum


class DeviceError(Exception):
    """The device failed or is unavailable; the message names the device and what happened."""


class EndOfStream(Exception):
    """A replay source has delivered everything it has (and does not loop)."""


class DeviceState(StrEnum):
    """What health and ``device.state`` events report for a device."""

    STARTING = "starting"
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class Capture:
    """When and in which order something was captured, stamped inside the driver."""

    seq: int
    mono_ns: int
    wall_time: float

    @staticmethod
    def now(seq: int) -> Capture:
        return Capture(seq=seq, mono_ns=time.monotonic_ns(), wall_time=time.time())


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Return a read-only copy-owned array so downstream stages cannot mutate a shared frame."""
    if not array.flags.owndata or array.base is not None:
        array = array.copy()
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True)
class Frame:
    """One video frame: an immutable BGR uint8 image (H×W×3) with its capture stamp."""

    source: str
    capture: Capture
    image: npt.NDArray[np.uint8] = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "image", _frozen(self.image))

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A block of mono int16 PCM at ``sample_rate`` (20–30 ms from live microphones)."""

    source: str
    capture: Capture
    samples: npt.NDArray[np.int16] = field(repr=False)
    sample_rate: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples", _frozen(self.samples))

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


SerialKind = Literal["barcode", "card"]


@dataclass(frozen=True, slots=True)
class SerialRead:
    """One complete, checksum-verified read from a serial sensor (a scan or a card tap).

    ``value`` is the decoded payload: the barcode text, or the card UID as
    upper-case hex. Raw card UIDs never leave the agent; the runtime hashes them.
    """

    source: str
    capture: Capture
    kind: SerialKind
    value: str
    symbology: str | None = None
    detail: dict[str, str] = field(default_factory=dict)


ItemT = TypeVar("ItemT", Frame, AudioChunk, SerialRead)

DEVICE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class DeviceOptions(BaseModel):
    """Settings every device has; each driver subclasses this with its own fields.

    Subclasses set ``type`` to a ``Literal`` of their registry name so the store
    config can pick the right model by ``type:``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        description="Unique device name, used in topics, events and logs (lower-case letters, digits, - and _).",
        pattern=DEVICE_NAME_PATTERN,
    )
    enabled: bool = Field(True, description="Set false to keep the entry in the file but not open the device.")
    read_timeout_s: float = Field(
        1.0, gt=0, le=30, description="Longest a single read waits before the runtime checks for stop and staleness."
    )
    stale_after_s: float = Field(
        10.0,
        gt=0,
        description="Cameras and microphones: with no data for this long the device is marked offline and reopened "
        "(and the watchdog is not petted). Serial readers are idle until a card or code comes: for them only a "
        "disconnection counts.",
    )


OptionsT = TypeVar("OptionsT", bound=DeviceOptions)


class Driver(ABC, Generic[ItemT, OptionsT]):
    """Base of every driver: ``open()``, ``read(timeout)``, ``close()``, usable as a context manager.

    ``Options`` is the pydantic model of the driver's settings in the store YAML.
    ``is_replay`` marks drivers that replay recorded media; ``realtime`` says
    whether a replay source paces itself like the live device (if not, the
    runtime applies back-pressure instead of dropping, for deterministic runs).
    """

    Options: ClassVar[type[DeviceOptions]]
    is_replay: ClassVar[bool] = False

    def __init__(self, options: OptionsT) -> None:
        self.options = options
        self.name = options.name
        self._seq = 0
        self._timeline_origin: tuple[int, float] | None = None

    @property
    def realtime(self) -> bool:
        return True

    @property
    def endless(self) -> bool:
        """A source that never finishes on its own (a looping replay, an unlimited test pattern)."""
        return False

    def next_capture(self, media_offset_s: float | None = None) -> Capture:
        """Stamp a new item; sequence numbers are gap-free for the driver's lifetime.

        Replay sources that run faster than real time pass the item's offset in
        the recording: its stamp then follows the recorded timeline, so dwell
        times, cool-downs and rates computed downstream are the same at any
        replay speed.
        """
        self._seq += 1
        if media_offset_s is None or self.realtime:
            return Capture.now(self._seq)
        if self._timeline_origin is None:
            self._timeline_origin = (time.monotonic_ns(), time.time())
        mono0, wall0 = self._timeline_origin
        return Capture(seq=self._seq, mono_ns=mono0 + int(media_offset_s * 1e9), wall_time=wall0 + media_offset_s)

    @abstractmethod
    def open(self) -> None:
        """Acquire the device; raise :class:`DeviceError` naming the device on failure."""

    @abstractmethod
    def read(self, timeout: float) -> ItemT | None:
        """Return the next item, ``None`` after ``timeout`` seconds without one."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice and after a failed ``open``."""

    def describe(self) -> str:
        """A one-line human description for logs and ``check-config`` (no secrets)."""
        return f"{self.options.type}:{self.name}"  # type: ignore[attr-defined]

    def __enter__(self: DriverSelf) -> DriverSelf:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


DriverSelf = TypeVar("DriverSelf", bound="Driver[Any, Any]")


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Resolve a relative path against the directory of the config file being validated."""
    value = Path(os.path.expandvars(str(value))).expanduser()
    base = (info.context or {}).get("base_dir") if info.context else None
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return Path(os.path.normpath(value))


def device_disabled(info: ValidationInfo) -> bool:
    """A disabled device entry is parked: its files need not exist (checked when it is enabled)."""
    return info.data.get("enabled") is False


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    value = _resolve_path(value, info)
    if not value.is_file() and not device_disabled(info):
        raise ValueError(f"file not found: {value}")
    return value


def _existing_dir(value: Path, info: ValidationInfo) -> Path:
    value = _resolve_path(value, info)
    if not value.is_dir() and not device_disabled(info):
        raise ValueError(f"directory not found: {value}")
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path in the config; relative paths are relative to the config file."""
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
"""A path in the config that must name an existing file."""
ExistingDir = Annotated[Path, AfterValidator(_existing_dir)]
"""A path in the config that must name an existing directory."""
