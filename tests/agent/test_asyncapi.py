"""docs/asyncapi.yaml: current, valid against the official AsyncAPI 3.0.0 JSON Schema, and true to the payloads.

The official schema comes from the npm package ``@asyncapi/specs`` (Apache-2.0; its
``schemas/3.0.0-without-$id.json``), fetched once with npm into ``.cache/npm/`` (git-ignored) and never
committed. Without npm or the registry the official check skips saying why; the checks of this document's
own references and of real payloads against the embedded schemas run everywhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from agent import asyncapi
from agent.events import DeviceStateChanged, EventStamper
from agent.pipelines.face.events import ShopperIdentified
from agent.pipelines.people.events import ZoneOccupancy
from agent.pipelines.registry import EVENT_TYPES
from agent.pipelines.serial.events import BarcodeScanned
from agent.schemas import SCHEMA_BASE_URL, load_schema, schema_names
from tests.conftest import REPO

SPECS = "@asyncapi/specs@6.11.1"
CACHE = REPO / ".cache" / "npm"


def official_schema() -> dict[str, Any]:
    target = CACHE / "asyncapi-specs-6.11.1" / "3.0.0-without-$id.json"
    if not target.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(f"npm is not installed: cannot fetch {SPECS} (apt install npm)")
        CACHE.mkdir(parents=True, exist_ok=True)
        packed = subprocess.run(
            [npm, "pack", SPECS, "--pack-destination", str(CACHE)], capture_output=True, text=True, timeout=300
        )
        if packed.returncode != 0:
            pytest.skip(f"npm pack {SPECS} failed: {packed.stderr.strip()[-300:]}")
        with tarfile.open(CACHE / packed.stdout.strip().splitlines()[-1]) as tar:
            member = tar.extractfile("package/schemas/3.0.0-without-$id.json")
            assert member is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(member.read())
    schema: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    return schema


def committed() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "docs" / "asyncapi.yaml").read_text(encoding="utf-8"))
    return document


def test_the_committed_document_is_current() -> None:
    text = (REPO / "docs" / "asyncapi.yaml").read_text(encoding="utf-8")
    assert text == asyncapi.render(), "docs/asyncapi.yaml is stale: run `python -m agent.apidocs --write`"


def test_the_document_is_valid_asyncapi_3() -> None:
    validator = jsonschema.Draft7Validator(official_schema())
    errors = sorted(validator.iter_errors(committed()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10])
    broken = committed()
    broken["channels"]["status"]["adress"] = broken["channels"]["status"].pop("address")
    assert list(validator.iter_errors(broken)), "the official schema must catch a misspelt key"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _pointer(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_resolves_and_every_address_parameter_is_declared() -> None:
    document = committed()
    for ref in _refs(document):
        assert ref.startswith("#/"), f"{ref}: the document must stand alone"
        _pointer(document, ref)
    for name, channel in document["channels"].items():
        used = {part[1:-1] for part in channel["address"].split("/") if part.startswith("{")}
        assert used == set(channel["parameters"]), name
    assert set(document["components"]["messages"]) >= set(EVENT_TYPES)
    for event_type in EVENT_TYPES:
        operation = document["operations"][f"publish.{event_type}"]
        assert operation["action"] == "send"
        assert _pointer(document, operation["channel"]["$ref"])["address"].endswith(f"/events/{event_type}")


def test_the_embedded_schemas_are_the_published_ones_and_accept_real_payloads() -> None:
    document = committed()
    for name in schema_names():
        embedded = document["components"]["schemas"][name]["schema"]
        assert embedded["x-schema-id"] == f"{SCHEMA_BASE_URL}{name}.json" == load_schema(name)["$id"]
    registry: Registry[Any] = Registry().with_resource("urn:asyncapi", DRAFT202012.create_resource(document))
    now = time.time()
    stamper = EventStamper("s1", "t1", iter(range(1, 100)).__next__)
    bodies = [
        BarcodeScanned(captured_at=now, device="till", code="4006381333931", symbology="EAN-13"),
        DeviceStateChanged(captured_at=now, device="cam", kind="camera", state="online", previous="starting"),
        ShopperIdentified(
            captured_at=now,
            member_id="m-1",
            confidence=0.7,
            margin=0.2,
            liveness=0.9,
            camera="door",
            track_id="f-1",
            frames=3,
        ),
        ZoneOccupancy(captured_at=now, camera="door", zone="till", count=2, reason="change"),
    ]
    for body in bodies:
        payload = stamper.stamp(body).to_payload()
        schema = {"$ref": f"urn:asyncapi#/components/schemas/{body.TYPE}/schema"}
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        validator.validate(payload)
        payload["unexpected"] = 1
        assert list(validator.iter_errors(payload)), f"{body.TYPE}: the embedded schema lost its strictness"
