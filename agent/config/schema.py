"""The store config: one pydantic model per YAML section; field descriptions are the reference.

Device sections take their models from the driver registry, so a new driver
type is accepted by the config as soon as it is registered.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.config.overload import OverloadSection
from agent.config.pipelines import PipelinesConfig
from agent.pipelines.shared import ModelOptions, PrivacyOptions
from drivers.base import ConfigPath, DeviceOptions, ExistingFile
from drivers.registry import DeviceKind, options_models

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSection(Section):
    id: str = Field(
        pattern=ID_PATTERN, description="Store identifier used in MQTT topics and events, e.g. 'sh-nanjing-rd-01'."
    )
    name: str = Field(min_length=1, description="Human name of the store (in the retained status message).")
    timezone: str = Field(
        "UTC",
        description="IANA time zone of the store, e.g. 'Asia/Shanghai'; sent in the retained status message so "
        "the hub can report in store-local time (event times are always UTC).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class TerminalSection(Section):
    id: str = Field(pattern=ID_PATTERN, description="This terminal's identifier, unique within the store.")
    location: str = Field(
        "", description="Where the terminal is mounted, for people reading dashboards (in the retained status message)."
    )


class TlsSettings(Section):
    ca_file: ExistingFile = Field(description="CA certificate (PEM) that signed the broker's certificate.")
    cert_file: ExistingFile | None = Field(None, description="Client certificate (PEM) when the broker requires one.")
    key_file: ExistingFile | None = Field(None, description="Private key (PEM) of the client certificate.")

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttSection(Section):
    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, gt=0, lt=65536, description="Broker port (8883 is usual with TLS).")
    protocol: Literal["3.1.1", "5"] = Field("5", description="MQTT protocol version.")
    client_id: str | None = Field(None, description="MQTT client id; default '<store>-<terminal>'.")
    username: str | None = Field(None, description="User name for the broker, if it requires one.")
    password_env: str | None = Field(
        None, pattern=r"^[A-Z_][A-Z0-9_]*$", description="Name of the environment variable holding the password."
    )
    password_credential: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of the systemd credential (LoadCredential=) holding the password.",
    )
    tls: TlsSettings | None = Field(None, description="TLS settings; omit for plain TCP on a trusted network.")
    topic_prefix: str = Field(
        "store", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", description="First levels of every topic."
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive interval in seconds.")
    ack: Literal["broker", "hub"] = Field(
        "broker",
        description="When an event leaves the outbox: 'broker' on the broker's PUBACK; 'hub' only when the hub "
        "acknowledges its event_id on <prefix>/<store>/<terminal>/ack (survives a broker crash).",
    )
    hub_ack_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="With ack: hub, events not acknowledged within this time are sent again."
    )
    health_interval_s: float = Field(
        30.0, ge=1, le=3600, description="How often the retained health message is published."
    )

    @model_validator(mode="after")
    def _one_password_source(self) -> MqttSection:
        if self.password_env and self.password_credential:
            raise ValueError("give password_env or password_credential, not both")
        return self


class OutboxSettings(Section):
    max_rows: int = Field(200_000, gt=0, description="Most events kept while the hub is unreachable.")
    max_bytes: int = Field(256 * 1024 * 1024, gt=0, description="Most bytes of event payloads kept on disk.")
    commit_window_ms: int = Field(
        25, ge=0, le=1000, description="Events arriving within this window are committed together (saves SD cards)."
    )


class StorageSection(Section):
    state_dir: ConfigPath = Field(
        Path("/var/lib/store-agent"),
        description="Where the outbox, gallery and counters live (systemd StateDirectory).",
    )
    outbox: OutboxSettings = Field(default_factory=OutboxSettings, description="Limits of the on-disk outbox.")


class RetentionSettings(Section):
    anonymous_track_s: float = Field(
        300.0,
        gt=0,
        description="Longest an anonymous id (person track, face visitor) lives: a track seen for longer gets a new "
        "id, and queued events older than this lose their anonymous ids.",
    )
    events_days: int = Field(7, gt=0, description="Undelivered events older than this are dropped from the outbox.")


class EgressSettings(Section):
    """What may leave the device beyond ids and counts. Raw audio and whole frames never do."""

    biometric_templates: bool = Field(
        False,
        description="Let templates of members whose consent covers the store leave the device, encrypted under the "
        "store key, for the store's other terminals (identity.sync); off: a member is known where enrolled only.",
    )
    face_snapshots: bool = Field(
        False, description="Attach a small JPEG of the face to shopper.identified (off: no image ever leaves)."
    )
    transcripts: bool = Field(False, description="Include speech transcripts in speech.intent (off: intents only).")


class CardReaderPlacement(Section):
    reader: str = Field(description="Name of a card reader in `serial`.")
    camera: str = Field(description="Camera that sees the person tapping that reader.")
    point: tuple[float, float] = Field(
        description="Pixel [x, y] in that camera's frame inside the box of a person who is tapping the reader."
    )


class CardSettings(Section):
    secret_env: str | None = Field(
        None, pattern=r"^[A-Z_][A-Z0-9_]*$", description="Env variable holding the per-store card secret (>= 16 bytes)."
    )
    secret_credential: str | None = Field(
        "card-secret", pattern=r"^[A-Za-z0-9_.-]+$", description="systemd credential holding the card secret."
    )
    registry: ConfigPath | None = Field(
        None, description="Member cards: YAML or CSV of card hash -> member id (`store-agent` never sees raw UIDs)."
    )
    placements: list[CardReaderPlacement] = Field(
        default_factory=list,
        description="Readers beside a camera: a tap identifies the person track standing at `point` (people pipeline).",
    )


class SyncSettings(Section):
    """Members shared by the store's terminals through the hub (docs/fleet.md)."""

    enabled: bool = Field(
        False,
        description="Share members whose consent covers the store (or chain) with the store's other terminals, and "
        "take theirs; erasures reach every terminal. Needs privacy.egress.biometric_templates for enrolments.",
    )
    store_key_env: str | None = Field(
        None, pattern=r"^[A-Z_][A-Z0-9_]*$", description="Env variable with the store key (64 hex digits)."
    )
    store_key_credential: str | None = Field(
        "store-key",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="systemd credential with the store key, which every terminal of the store holds and the hub "
        "does not: shared templates are encrypted under it.",
    )


class IdentitySection(Section):
    cards: CardSettings = Field(default_factory=CardSettings, description="Member cards read by NFC/RFID readers.")
    sync: SyncSettings = Field(default_factory=SyncSettings, description="Members shared across the store.")
    upkeep_interval_s: float = Field(
        3600.0,
        gt=0,
        description="How often the running daemon erases members whose consent has expired (as an erasure request "
        "would) and verifies the audit chain, whose head (sequence and MAC) then goes into health.",
    )


class PrivacySection(Section):
    retention: RetentionSettings = Field(default_factory=RetentionSettings, description="How long things are kept.")
    egress: EgressSettings = Field(default_factory=EgressSettings, description="What may leave the device.")

    def options(self) -> PrivacyOptions:
        """What pipelines must honour, as they receive it in ``Shared.privacy``."""
        return PrivacyOptions(
            transcripts=self.egress.transcripts,
            face_snapshots=self.egress.face_snapshots,
            anonymous_track_s=self.retention.anonymous_track_s,
        )


class ModelsSection(Section):
    directory: ConfigPath = Field(
        Path("/var/lib/store-agent/models"), description="Where provisioned model files live."
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        min_length=1,
        description="onnxruntime execution providers in order of preference (CUDA/TensorRT on Jetson).",
    )
    threads: int = Field(1, ge=1, le=16, description="Threads per model session.")
    memory_arena: bool = Field(
        True,
        description="onnxruntime's CPU memory arena in each session. Off, each run's activations go back to the C "
        "heap, which with glibc keeps them resident (+75-125 MB over the whole terminal, docs/performance.md); "
        "turn it off only with an allocator that returns memory.",
    )
    mirror: str | None = Field(
        None,
        description="The chain's model mirror, tried before each model's own sources by `store-agent models fetch`: "
        "an https:// base URL or an absolute directory holding the files as a models directory does.",
    )

    @field_validator("mirror")
    @classmethod
    def _mirror(cls, value: str | None) -> str | None:
        from models.provision import check_mirror

        return None if value is None else check_mirror(value)

    def options(self) -> ModelOptions:
        """The section as pipelines and tools receive it (``Shared.models``)."""
        return ModelOptions(Path(self.directory), tuple(self.providers), self.threads)


class TrustSection(Section):
    """Who may command this terminal and acknowledge its events: the hub's keys (docs/mqtt.md, "Trust")."""

    hub_keys: list[ExistingFile] = Field(
        default_factory=list,
        description="Files with the hub's public key (hub.pub from `store-agent hub keygen`); list the current key "
        "first, and the next one beside it during a rotation. Without one, only open commands run.",
    )
    hub_keys_credential: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="Or a systemd credential holding hub key lines, one per line."
    )
    terminal_key_file: ConfigPath | None = Field(
        None, description="This terminal's own key; default <state_dir>/trust/terminal.key, made at first start."
    )
    open_commands: list[str] = Field(
        default_factory=lambda: ["ping"],
        description="Commands accepted without the hub's signature (nothing that changes state or reveals members).",
    )
    max_command_ttl_s: float = Field(
        600.0, gt=0, le=86400, description="Longest validity window (expires_at - issued_at) a command may carry."
    )
    clock_skew_s: float = Field(
        120.0, ge=0, le=3600, description="How far the hub's and this terminal's clocks may differ."
    )


class LoggingSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Root log level.")
    levels: dict[str, Literal["DEBUG", "INFO", "WARNING", "ERROR"]] = Field(
        default_factory=dict, description="Per-logger levels, e.g. {'drivers.serial': 'DEBUG'}."
    )
    format: Literal["journal", "text"] = Field(
        "text", description="'journal' omits timestamps (journald adds them); 'text' includes them."
    )


class HomeAssistantSettings(Section):
    enabled: bool = Field(
        False, description="Publish Home Assistant MQTT discovery (retained) and state topics on the store's broker."
    )
    discovery_prefix: str = Field(
        "homeassistant",
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="Home Assistant's discovery prefix (its MQTT integration's setting; 'homeassistant' by default).",
    )
    member_sensor: bool = Field(
        False,
        description="Also expose the last identified member's id as a sensor (opt-in: it puts a member id in "
        "Home Assistant's history; cleared when that member is erased).",
    )


class PrometheusSettings(Section):
    enabled: bool = Field(False, description="Serve the health figures as Prometheus metrics over HTTP.")
    host: str = Field(
        "127.0.0.1", description="Address to listen on; loopback by default (scrape it locally or through a proxy)."
    )
    port: int = Field(9464, gt=0, lt=65536, description="Port of the /metrics endpoint.")


class IntegrationsSection(Section):
    home_assistant: HomeAssistantSettings = Field(
        default_factory=HomeAssistantSettings, description="Home Assistant MQTT discovery; off by default."
    )
    prometheus: PrometheusSettings = Field(
        default_factory=PrometheusSettings, description="Prometheus metrics on localhost; off by default."
    )


def _device_list(kind: DeviceKind) -> Any:
    """``list[<union of the registered drivers' options, picked by type>]``."""
    models = tuple(options_models(kind))
    if not models:
        return list[DeviceOptions]
    item: Any = models[0] if len(models) == 1 else Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007
    return list[item]


if TYPE_CHECKING:
    CameraList = list[DeviceOptions]
    MicrophoneList = list[DeviceOptions]
    SerialList = list[DeviceOptions]
else:
    CameraList = _device_list("camera")
    MicrophoneList = _device_list("microphone")
    SerialList = _device_list("serial")


class StoreConfig(Section):
    """One store terminal's whole configuration."""

    version: Literal[1] = Field(description="Config format version; 1 is the only one so far.")
    store: StoreSection = Field(description="The store this terminal belongs to.")
    terminal: TerminalSection = Field(description="This terminal.")
    mqtt: MqttSection = Field(default_factory=MqttSection, description="Connection to the hub's MQTT broker.")
    storage: StorageSection = Field(default_factory=StorageSection, description="Local state and the outbox.")
    cameras: CameraList = Field(default_factory=list, description="Cameras; each entry's `type:` picks its driver.")
    microphones: MicrophoneList = Field(default_factory=list, description="Microphones; `type:` picks the driver.")
    serial: SerialList = Field(
        default_factory=list, description="Serial sensors (card readers, scanners); `type:` picks the protocol."
    )
    pipelines: PipelinesConfig = Field(
        default_factory=PipelinesConfig, description="What the agent computes; each can be off."
    )
    identity: IdentitySection = Field(default_factory=IdentitySection, description="How members are recognised.")
    privacy: PrivacySection = Field(
        default_factory=PrivacySection, description="Retention and egress of personal data."
    )
    models: ModelsSection = Field(default_factory=ModelsSection, description="Model files and execution providers.")
    overload: OverloadSection = Field(
        default_factory=OverloadSection, description="Load shedding when the board cannot keep up."
    )
    trust: TrustSection = Field(
        default_factory=TrustSection, description="The hub's keys: signed commands and acks, authenticated events."
    )
    logging: LoggingSection = Field(default_factory=LoggingSection, description="Log levels and format.")
    integrations: IntegrationsSection = Field(
        default_factory=IntegrationsSection, description="Optional links to other systems, each off by default."
    )

    @model_validator(mode="after")
    def _unique_names_and_references(self) -> StoreConfig:
        seen: dict[str, str] = {}
        for section in ("cameras", "microphones", "serial"):
            for i, device in enumerate(getattr(self, section)):
                where = f"{section}[{i}]"
                if device.name in seen:
                    raise ValueError(
                        f"{where}.name: device name {device.name!r} is already used by {seen[device.name]}"
                    )
                seen[device.name] = where
        self.pipelines.check_references(self)
        for i, placement in enumerate(self.identity.cards.placements):
            where = f"identity.cards.placements[{i}]"
            if placement.reader not in self.device_names("serial"):
                raise ValueError(f"{where}.reader: no enabled serial device named {placement.reader!r}")
            if placement.camera not in self.device_names("camera"):
                raise ValueError(f"{where}.camera: no enabled camera named {placement.camera!r}")
        return self

    def devices(self) -> list[tuple[DeviceKind, DeviceOptions]]:
        """Every enabled device with its kind, in config order."""
        out: list[tuple[DeviceKind, DeviceOptions]] = []
        sections: tuple[tuple[DeviceKind, list[DeviceOptions]], ...] = (
            ("camera", self.cameras),
            ("microphone", self.microphones),
            ("serial", self.serial),
        )
        for kind, section in sections:
            out.extend((kind, d) for d in section if d.enabled)
        return out

    def device_names(self, kind: DeviceKind, include_disabled: bool = False) -> set[str]:
        return {d.name for _, d in self.device_entries(kind) if d.enabled or include_disabled}

    def device_entries(self, kind: DeviceKind) -> list[tuple[str, DeviceOptions]]:
        """Every entry of the kind's section, enabled or not, with its YAML path (``cameras[2]``)."""
        section = {"camera": "cameras", "microphone": "microphones", "serial": "serial"}[kind]
        return [(f"{section}[{i}]", d) for i, d in enumerate(getattr(self, section))]
