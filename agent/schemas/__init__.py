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
