"""A config the hub pushes (``apply-config``): validated as a whole before anything is written, written
atomically with the previous files kept beside them, put back when the new config does not start.

The terminal writes only its own config file and the base file that config names (a file name in the same
directory); it never writes a path the hub chose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.config.errors import ConfigError
from agent.config.loader import BASE_KEY, LoadedConfig, base_name, config_hash, parse_layers, read_yaml
from agent.config.schema import StoreConfig

#: Largest config or base file a push may carry.
MAX_PUSHED_BYTES = 256 * 1024
PREVIOUS_SUFFIX = ".previous"


class PushError(ValueError):
    """The push cannot be applied; the message says why, and nothing was written."""


@dataclass(frozen=True)
class PushedConfig:
    """A validated push: what to write where, and the hash the terminal will report once it runs it."""

    config: StoreConfig
    files: dict[Path, bytes]
    sha256: str


def check_push(running: LoadedConfig, text: str, base_text: str | None) -> PushedConfig:
    """Validate a pushed config (and base) against this terminal's files; raises PushError or ConfigError."""
    for what, value in (("config", text), ("base", base_text)):
        if value is not None and len(value.encode("utf-8")) > MAX_PUSHED_BYTES:
            raise PushError(f"the pushed {what} is over {MAX_PUSHED_BYTES // 1024} KiB")
    path = running.path.resolve()
    label = f"pushed {path.name}"
    data, lines = read_yaml(text, label)
    named = base_name(data, label, lines.get((BASE_KEY,)))
    if named is None and base_text is not None:
        raise PushError(f"a base was pushed but the config names none ({BASE_KEY}: <file name>)")
    base_path = path.parent / named if named else None
    if base_path is not None and base_text is None:  # the base on disk stays; the config alone changes
        try:
            base_text = base_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PushError(f"the config names base {named}, which was not pushed and cannot be read ({exc})") from None
    config = parse_layers(text, label, path.parent, base_text, f"pushed {named}" if named else None)
    files = {path: text.encode("utf-8")}
    if base_path is not None and base_text is not None:
        files[base_path] = base_text.encode("utf-8")
    base_bytes = files.get(base_path) if base_path is not None else None
    return PushedConfig(config, files, config_hash(files[path], base_bytes))


def write_push(push: PushedConfig) -> None:
    """Write each file atomically (temporary file, fsync, rename), keeping the old one as ``<name>.previous``."""
    for path, data in push.files.items():
        if path.exists():
            _atomic_write(path.with_name(path.name + PREVIOUS_SUFFIX), path.read_bytes(), path.stat().st_mode)
        _atomic_write(path, data, path.stat().st_mode if path.exists() else 0o640)


def restore_previous(push: PushedConfig) -> None:
    """Put back the files a push replaced (the new config did not start)."""
    for path in push.files:
        previous = path.with_name(path.name + PREVIOUS_SUFFIX)
        if previous.exists():
            _atomic_write(path, previous.read_bytes(), previous.stat().st_mode)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o777)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


__all__ = ["ConfigError", "PushError", "PushedConfig", "check_push", "restore_previous", "write_push"]
