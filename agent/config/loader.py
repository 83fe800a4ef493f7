"""Load a store YAML file into a validated :class:`StoreConfig`, or explain every problem at once.

Each error names the file, the line, the YAML path, what was expected and
the value found, e.g. ``store.yaml:14: cameras[1].fps: must be greater than 0 (got -5)``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.config.errors import ConfigError, ConfigProblem
from agent.config.schema import StoreConfig

__all__ = ["ConfigError", "ConfigProblem", "LoadedConfig", "load_config", "parse_config"]

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from and a hash for the birth message."""

    config: StoreConfig
    path: Path
    sha256: str


def format_path(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_map(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    """Record the 1-based line of every key (mappings) or item (sequences) below ``node``."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines[child] = key_node.start_mark.line + 1
            _line_map(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), lines)


def _strip_tags(loc: tuple[Any, ...], data: Any) -> PathKey:
    """Drop the discriminator tags pydantic inserts into error locations of tagged unions."""
    out: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and isinstance(part, str) and part not in current and current.get("type") == part:
            continue
        out.append(part)
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            current = None
    return tuple(out)


_PREFIXED = re.compile(r"^(?P<path>[A-Za-z_][\w-]*(?:\[\d+\]|\.[A-Za-z_][\w-]*)*): (?P<msg>.*)$", re.S)


def _parse_path(text: str) -> PathKey:
    parts: list[str | int] = []
    for name, index in re.findall(r"([A-Za-z_][\w-]*)|\[(\d+)\]", text):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _message(error: Any) -> str:
    kind = error["type"]
    msg: str = error["msg"]
    if kind == "extra_forbidden":
        return "unknown key (not a setting of this section; check the spelling against config/store-example.yaml)"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "missing key 'type' (it selects the driver)"
    msg = msg.removeprefix("Value error, ")
    msg = re.sub(r"^Input should be ", "must be ", msg)
    msg = re.sub(r"^String should ", "must ", msg)
    msg = re.sub(r"^List should ", "must ", msg)
    return msg


def _value_text(error: Any, message: str) -> str:
    if error["type"] in ("missing", "extra_forbidden") or "input" not in error:
        return ""
    value = error["input"]
    if isinstance(value, dict | list) or repr(value) in message:
        return ""
    return f" (got {value!r})"


def _problems_from(exc: ValidationError, data: Any, lines: dict[PathKey, int], file: str) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        path = _strip_tags(error["loc"], data)
        message = _message(error)
        match = _PREFIXED.match(message)
        if match and not path:
            path, message = _parse_path(match["path"]), match["msg"]
        line = None
        probe = path
        while probe and line is None:
            line = lines.get(probe)
            probe = probe[:-1]
        problems.append(
            ConfigProblem(
                file=file,
                line=line or lines.get(()),
                path=format_path(path),
                message=message + _value_text(error, message),
            )
        )
    return problems


def _refuse_aliases(text: str, file: str) -> None:
    """Anchors and aliases are refused: a config has no use for them, and nested aliases expand exponentially
    (a few hundred bytes of "billion laughs" become gigabytes of lists)."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        anchored = isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None
        if anchored:
            line = event.start_mark.line + 1 if event.start_mark is not None else None
            raise ConfigError(
                [ConfigProblem(file, line, "", "YAML anchors and aliases (&name, *name) are not allowed in a config")]
            )


def parse_config(text: str, file: str = "<config>", base_dir: Path | None = None) -> StoreConfig:
    """Validate YAML ``text``; relative paths in it are resolved against ``base_dir``."""
    try:
        _refuse_aliases(text, file)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, line, "", f"malformed YAML: {problem}")]) from None
    if node is None or not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem(file, 1, "", "the file must be a YAML mapping of sections (version, store, ...)")]
        )
    lines: dict[PathKey, int] = {}
    _line_map(node, (), lines)
    try:
        return StoreConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_problems_from(exc, data, lines, file)) from None


def load_config(path: Path) -> LoadedConfig:
    """Read and validate the store YAML at ``path``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read config file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"not UTF-8 text (byte offset {exc.start})")]) from None
    config = parse_config(text, file=str(path), base_dir=path.resolve().parent)
    return LoadedConfig(config=config, path=path, sha256=hashlib.sha256(raw).hexdigest())
