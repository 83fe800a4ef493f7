"""What the daemon needs before it starts, checked without starting it: a valid report means ``run`` will start.

A config can be valid and the daemon still fail at start: a secret that is not there, a gallery that does not
open with its key, a model that was never provisioned, a counters file that is corrupt. Each such check here
gives a :class:`Problem` naming the setting and what to do, of one of two kinds: ``config`` (something a person
must fix in the config, its secrets or its files: exit 78, which systemd does not restart) or ``unavailable`` (a
model or a device that is missing: exit 69). ``store-agent check-config --strict`` prints them all; the daemon
runs the same checks (all but the devices, which it reopens with backoff while running) before it opens
anything, and stops at the first with one line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.config.schema import StoreConfig
from agent.errors import AgentError

Kind = Literal["config", "unavailable"]


@dataclass(frozen=True)
class Problem:
    """One reason the daemon would not start (or a device would stay offline)."""

    where: str
    message: str
    kind: Kind = "config"
    #: False for a missing device: the daemon starts and keeps reopening it (the device stays offline).
    blocks_start: bool = True

    def line(self) -> str:
        return f"{self.where}: {self.message}"


def check(config: StoreConfig, *, devices: bool = True) -> list[Problem]:
    """Every problem found; ``devices`` also checks that device paths exist."""
    problems = [
        *_storage(config),
        *_secrets(config),
        *_gallery(config),
        *_models(config),
    ]
    if devices:
        problems.extend(_devices(config))
    return problems


def raise_first(problems: list[Problem]) -> None:
    """For the daemon: the first problem as the exception the CLI turns into its exit code (78 or 69)."""
    from models.manifest import ModelError

    for problem in problems:
        if problem.kind == "config":
            raise AgentError(problem.line())
    for problem in problems:
        raise ModelError(problem.line())


def checked(config: StoreConfig) -> dict[str, int]:
    """What ``check`` looks at, for the summary of a clean report."""
    return {
        "models": len(required_models(config)),
        "devices": sum(1 for _ in _device_paths(config)),
    }


# --- the checks -----------------------------------------------------------------------------------


def _storage(config: StoreConfig) -> Iterator[Problem]:
    from agent.runtime.state import COUNTERS_FILE, StateFileError, read_counters

    state_dir = Path(config.storage.state_dir)
    if state_dir.exists() and not state_dir.is_dir():
        yield Problem("storage.state_dir", f"{state_dir} exists and is not a directory")
        return
    existing = next((p for p in (state_dir, *state_dir.parents) if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        where = "it" if existing == state_dir else f"{existing}, where it would be created,"
        yield Problem("storage.state_dir", f"{state_dir}: {where} is not writable by this user ({_user()})")
    try:
        read_counters(state_dir / COUNTERS_FILE)
    except StateFileError as exc:
        yield Problem("storage.state_dir", str(exc))


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def _secrets(config: StoreConfig) -> Iterator[Problem]:
    from agent.delivery.client import DeliveryError, read_password, tls_context
    from agent.runtime.trust import terminal_key_path
    from agent.runtime.wiring import card_identity
    from agent.trust.keys import TrustKeyError, parse_terminal_private, read_hub_keys
    from drivers.secrets import SecretError, read_secret

    try:
        read_password(config.mqtt)
        tls_context(config.mqtt)
    except DeliveryError as exc:
        where, _, message = str(exc).partition(": ")
        yield Problem(where, message) if where.startswith("mqtt.") and message else Problem("mqtt", str(exc))
    trust = config.trust
    try:
        credential = read_secret(None, trust.hub_keys_credential)
        read_hub_keys([Path(p) for p in trust.hub_keys], credential)
        key_path = terminal_key_path(config)
        if key_path.exists():
            parse_terminal_private(key_path.read_text(encoding="ascii"), str(key_path))
    except (TrustKeyError, SecretError, OSError, UnicodeDecodeError) as exc:
        yield Problem("trust", str(exc))
    from agent.pipelines.serial.stage import card_readers

    if card_readers([options for kind, options in config.devices() if kind == "serial"]):
        try:
            card_identity(config)
        except AgentError as exc:
            yield Problem("identity.cards", str(exc).removeprefix("identity.cards: "))
    sync = config.identity.sync
    if sync.enabled:
        from agent.identity.sync import SyncError, load_store_key

        try:
            load_store_key(sync.store_key_env, None if sync.store_key_env else sync.store_key_credential)
        except SyncError as exc:
            yield Problem("identity.sync", str(exc))
    for where, options in config.device_entries("camera"):
        env, cred = getattr(options, "password_env", None), getattr(options, "password_credential", None)
        if options.enabled and (env or cred):
            try:
                read_secret(env, cred)
            except SecretError as exc:
                yield Problem(f"{where} ({options.name})", f"password: {exc}")


def _gallery(config: StoreConfig) -> Iterator[Problem]:
    from agent.identity.keys import GalleryKeyError, load_key
    from agent.pipelines.face.resources import gallery_path
    from agent.pipelines.face.settings import FaceSettings
    from agent.runtime.wiring import face_gallery

    face = config.pipelines.settings(FaceSettings)
    if not face.enabled:
        return
    state_dir = Path(config.storage.state_dir)
    if not gallery_path(state_dir).exists():  # made at the first start: only the key must be there
        try:
            load_key(face.key_env, face.key_credential, face.key_file)
        except GalleryKeyError as exc:
            yield Problem("pipelines.face", str(exc))
        return
    try:
        face_gallery(face, state_dir).close()
    except AgentError as exc:
        yield Problem("pipelines.face", str(exc).removeprefix("pipelines.face: "))


def required_models(config: StoreConfig) -> list[tuple[str, str]]:
    """(pipeline, model name) for every model an enabled pipeline loads."""
    return [(p, name) for name, pipelines in config.pipelines.required_models().items() for p in pipelines]


def _models(config: StoreConfig) -> Iterator[Problem]:
    from models.manifest import ModelError, resolve

    directory = Path(config.models.directory)
    for pipeline, name in required_models(config):
        try:
            resolve(name, directory)
        except ModelError as exc:
            yield Problem(f"pipelines.{pipeline}", str(exc), "unavailable")


def _device_paths(config: StoreConfig) -> Iterator[tuple[str, Path]]:
    """(config path, device file) of every enabled device that names one (serial ports, V4L2 cameras)."""
    for kind, section in (("serial", "serial"), ("camera", "cameras")):
        for i, options in enumerate(getattr(config, section)):
            if not options.enabled:
                continue
            where = f"{section}[{i}] ({options.name})"
            port = getattr(options, "port", None)
            if kind == "serial" and port:
                yield where, Path(port)
            device = getattr(options, "device", None) if getattr(options, "type", "") == "v4l2" else None
            if isinstance(device, int):
                yield where, Path(f"/dev/video{device}")
            elif isinstance(device, str):
                yield where, Path(device)


def _devices(config: StoreConfig) -> Iterator[Problem]:
    for where, path in _device_paths(config):
        if not path.exists():
            yield Problem(where, f"{path} does not exist (unplugged, or another name?)", "unavailable", False)
        elif not os.access(path, os.R_OK | os.W_OK):
            yield Problem(where, f"{path} is not readable and writable by {_user()} (its group?)", "unavailable", False)
