"""Events: ids sort by time, the envelope is complete, and every event type has a JSON Schema that its payloads meet."""

from __future__ import annotations

import time

import jsonschema
import pytest

from agent.events import DeviceStateChanged, EventStamper, new_event_id
from agent.pipelines.registry import EVENT_TYPES
from agent.pipelines.serial.events import BarcodeScanned
from agent.schemas import load_schema, schema_names, validate_payload


def all_event_types() -> dict[str, type]:
    return dict(EVENT_TYPES)


def test_event_ids_are_uuid7_and_sort_by_time() -> None:
    ids = [new_event_id(1_700_000_000_000_000_000 + i * 1_000_000) for i in range(100)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 100
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)
    same_ms = {new_event_id(1_700_000_000_000_000_000) for _ in range(1000)}
    assert len(same_ms) == 1000


def test_iso_time_matches_datetime() -> None:
    import random
    from datetime import datetime, timezone

    from agent.events import iso_time

    rng = random.Random(1)
    for t in [0.0, 1.5, 1795000000.123, 1795000000.9999, *(rng.uniform(0, 4e9) for _ in range(2000))]:
        expected = datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert iso_time(t) == expected, t


def test_every_event_type_has_a_schema() -> None:
    types = all_event_types()
    assert {"device.state", "barcode.scanned", "scene.motion"} <= set(types)
    missing = sorted(t for t in types if t not in schema_names())
    assert missing == []
    for name in schema_names():
        jsonschema.Draft202012Validator.check_schema(load_schema(name))


def test_stamped_payloads_validate_and_carry_the_envelope() -> None:
    counter = iter(range(1, 100))
    stamper = EventStamper("store-1", "t-1", lambda: next(counter))
    now = time.time()
    events = [
        stamper.stamp(
            DeviceStateChanged(
                captured_at=now, device="cam", kind="camera", state="offline", previous="online", reason="unplugged"
            )
        ),
        stamper.stamp(BarcodeScanned(captured_at=now, device="scanner", code="4006381333931", symbology="EAN-13")),
    ]
    for event in events:
        payload = event.to_payload()
        validate_payload(payload)
        assert payload["store_id"] == "store-1" and payload["terminal_id"] == "t-1"
        assert payload["captured_at"].endswith("Z")
    assert [e.seq for e in events] == [1, 2]


def test_schema_rejects_a_payload_with_unknown_fields() -> None:
    stamper = EventStamper("store-1", "t-1", lambda: 1)
    payload = stamper.stamp(BarcodeScanned(captured_at=time.time(), device="s", code="1")).to_payload()
    payload["raw_uid"] = "04A1B2"
    with pytest.raises(jsonschema.ValidationError):
        validate_payload(payload)


def test_every_schema_has_a_url_id_under_the_published_base() -> None:
    from urllib.parse import urlparse

    from agent.schemas import SCHEMA_BASE_URL

    base = urlparse(SCHEMA_BASE_URL)
    assert base.scheme == "https" and base.netloc and base.path.endswith("/v1/")
    for name in schema_names():
        assert load_schema(name)["$id"] == f"{SCHEMA_BASE_URL}{name}.json", name


def test_anonymous_tracks_are_track_id_everywhere_and_the_old_name_is_a_deprecated_copy() -> None:
    """``track`` (face events until now) is written beside ``track_id`` with the same value, marked deprecated in
    the schema, for the rest of schema_version 1; no schema has ``track`` without ``track_id``."""
    from agent.pipelines.face.events import ShopperIdentified, SpoofSuspected

    for name in schema_names():
        properties = load_schema(name).get("properties", {})
        if "track" in properties:
            assert properties["track"].get("deprecated") is True and "track_id" in properties, name
    stamper = EventStamper("store-1", "t-1", iter(range(1, 10)).__next__)
    now = time.time()
    for body in (
        ShopperIdentified(
            captured_at=now,
            member_id="m-1",
            confidence=0.7,
            margin=0.2,
            liveness=0.9,
            camera="door",
            track_id="f-3",
            frames=4,
        ),
        SpoofSuspected(captured_at=now, camera="door", track_id="f-4", score=0.1, frames=4),
    ):
        payload = stamper.stamp(body).to_payload()
        validate_payload(payload)
        assert payload["track_id"] == payload["track"] == body.track_id
        del payload["track"]
        with pytest.raises(jsonschema.ValidationError, match="'track' is a required property"):
            validate_payload(payload)
