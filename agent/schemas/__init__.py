"""JSON Schemas of every payload the agent publishes, one file per event type (``<type>.json``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The schema ``<name>.json`` (an event type, ``envelope``, or a status/health payload)."""
    path = SCHEMA_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no JSON Schema for {name!r} in {SCHEMA_DIR}")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def schema_names() -> list[str]:
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))


def validate_payload(payload: dict[str, Any], name: str | None = None) -> None:
    """Validate ``payload`` against the schema of its ``type`` (or ``name``); raises ``jsonschema.ValidationError``.

    Needs the ``jsonschema`` package (a dev extra): tests and the docs generator use it, the daemon does not.
    """
    import jsonschema
    from referencing import Registry, Resource

    schema_name = name or str(payload.get("type"))
    registry: Registry[Any] = Registry().with_resources(
        (f"{n}.json", Resource.from_contents(load_schema(n))) for n in schema_names()
    )
    validator = jsonschema.Draft202012Validator(
        load_schema(schema_name), registry=registry, format_checker=jsonschema.FormatChecker()
    )
    validator.validate(payload)
