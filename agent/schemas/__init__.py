"""JSON Schemas of every payload the agent publishes, one file per event type (``<type>.json``).

Each schema's ``$id`` is ``SCHEMA_BASE_URL`` + its file name, so a consumer's validator resolves the relative
``$ref: envelope.json`` to the same place and a schema found anywhere names where it belongs. The version in the
path is the payloads' ``schema_version``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent
#: Where the schemas are published (the ``$id`` of each is this plus its file name). ``.example`` until the
#: project has a home of its own: then change this line and the ``$id``s (tests/agent/test_events.py checks).
SCHEMA_BASE_URL = "https://store-edge-agent.example/schemas/v1/"


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


def schema_id(name: str) -> str:
    return f"{SCHEMA_BASE_URL}{name}.json"


def registry() -> Any:
    """A ``referencing.Registry`` holding every schema under its ``$id`` (``jsonschema`` is a dev extra)."""
    from referencing import Registry, Resource

    return Registry().with_resources((schema_id(n), Resource.from_contents(load_schema(n))) for n in schema_names())


def validate_payload(payload: dict[str, Any], name: str | None = None) -> None:
    """Validate ``payload`` against the schema of its ``type`` (or ``name``); raises ``jsonschema.ValidationError``.

    Needs the ``jsonschema`` package (a dev extra): tests and the docs generator use it, the daemon does not.
    """
    import jsonschema

    schema_name = name or str(payload.get("type"))
    validator = jsonschema.Draft202012Validator(
        load_schema(schema_name), registry=registry(), format_checker=jsonschema.FormatChecker()
    )
    validator.validate(payload)
