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

__all__ = ["ConfigError", "ConfigProblem", "LoadedConfig", "config_hash", "load_config", "parse_config", "parse_layers"]

PathKey = tuple[str | int, ...]
#: A terminal's config may start with ``base: store-base.yaml``: the store's shared settings, which the
#: terminal's own file overrides key by key (docs/fleet.md).
BASE_KEY = "base"
_BASE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.ya?ml$")


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from and a hash for the birth message."""

    config: StoreConfig
    path: Path
    sha256: str
    #: The base file the config layers itself on (a name beside it), or None.
    base: str | None = None


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


def read_yaml(text: str, file: str) -> tuple[dict[str, Any], dict[PathKey, int]]:
    """One YAML mapping and the line of every key in it."""
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
    return data, lines


def _overlay(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: mappings merge key by key, anything else (lists included) is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _overlay(base[k], v) if k in base else v for k, v in over.items()}}
    return over


def base_name(data: dict[str, Any], file: str, line: int | None) -> str | None:
    """The ``base:`` file a terminal's config layers itself on: a file name in the same directory."""
    name = data.get(BASE_KEY)
    if name is None:
        return None
    if not isinstance(name, str) or not _BASE_FILE.match(name):
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    line,
                    BASE_KEY,
                    f"must be a file name in the same directory, e.g. store-base.yaml (got {name!r})",
                )
            ]
        )
    return name


def parse_layers(
    text: str, file: str, base_dir: Path | None, base_text: str | None = None, base_file: str | None = None
) -> StoreConfig:
    """A terminal's config (``text``) over the store's base config (``base_text``, named by its ``base:`` key),
    validated as one; each problem names the file and line the offending key came from."""
    data, lines = read_yaml(text, file)
    named = base_name(data, file, lines.get((BASE_KEY,)))
    base_lines: dict[PathKey, int] = {}
    if named is None:
        merged = data
    else:
        if base_text is None:
            raise ConfigError([ConfigProblem(file, lines.get((BASE_KEY,)), BASE_KEY, f"base file {named} is missing")])
        base, base_lines = read_yaml(base_text, base_file or named)
        if BASE_KEY in base:
            problem = "a base config cannot name a base of its own (one level: store base, terminal overrides)"
            raise ConfigError([ConfigProblem(base_file or named, base_lines.get((BASE_KEY,)), BASE_KEY, problem)])
        merged = _overlay(base, {k: v for k, v in data.items() if k != BASE_KEY})
    try:
        return StoreConfig.model_validate(merged, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = _problems_from(exc, merged, lines, file)
        if named is None:
            raise ConfigError(problems) from None
        raise ConfigError([_from_layer(p, lines, base_lines, file, base_file or named) for p in problems]) from None


def _from_layer(
    problem: ConfigProblem, lines: dict[PathKey, int], base_lines: dict[PathKey, int], file: str, base_file: str
) -> ConfigProblem:
    """Name the file that set the offending key: the terminal's when it sets it (or a section above it), else
    the base's."""
    path = _parse_path(problem.path)
    for depth in range(len(path), 0, -1):
        probe = path[:depth]
        if probe in lines:
            return ConfigProblem(file, lines[probe], problem.path, problem.message)
        if probe in base_lines:
            return ConfigProblem(base_file, base_lines[probe], problem.path, problem.message)
    return problem


def parse_config(text: str, file: str = "<config>", base_dir: Path | None = None) -> StoreConfig:
    """Validate YAML ``text`` (one file, no ``base:``); relative paths in it are resolved against ``base_dir``."""
    return parse_layers(text, file, base_dir)


def config_hash(text: bytes, base: bytes | None = None) -> str:
    """The hash a terminal reports for the config it runs (status ``config_sha256``): the file's SHA-256, or with
    a base, SHA-256 over both files' hashes, so the hub can compute it for what it pushed."""
    if base is None:
        return hashlib.sha256(text).hexdigest()
    return hashlib.sha256(hashlib.sha256(text).digest() + hashlib.sha256(base).digest()).hexdigest()


def _read_text(path: Path) -> tuple[bytes, str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read config file: {exc.strerror}")]) from None
    try:
        return raw, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"not UTF-8 text (byte offset {exc.start})")]) from None


def load_config(path: Path) -> LoadedConfig:
    """Read and validate the store YAML at ``path`` (layered on the base file it names, if any)."""
    raw, text = _read_text(path)
    data, lines = read_yaml(text, str(path))
    named = base_name(data, str(path), lines.get((BASE_KEY,)))
    base_raw = base_text = None
    if named is not None:
        base_raw, base_text = _read_text(path.resolve().parent / named)
    base_path = str(path.resolve().parent / named) if named else None
    config = parse_layers(text, str(path), path.resolve().parent, base_text, base_path)
    return LoadedConfig(config=config, path=path, sha256=config_hash(raw, base_raw), base=named)
