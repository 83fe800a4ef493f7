"""Serial reads become events: scans, and card taps that carry a member id or a keyed hash, never the UID."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.loader import LoadedConfig, parse_config
from agent.identity.cards import card_hash
from agent.runtime.agent import Agent, AgentError
from agent.runtime.sink import MemorySink
from agent.schemas import validate_payload
from tests.media import config_text

SECRET = "a-store-secret-of-32-bytes-long!"
MEMBER_UID = "04A1B2C3"
STRANGER_UID = "DEADBEEF"


def agent_for(tmp_path: Path, sink: MemorySink) -> Agent:
    (tmp_path / "cards.script").write_text(
        f'text "{MEMBER_UID}\\r\\n"\nwait 2\ntext "{STRANGER_UID}\\r\\n"\ntext "garbage!!\\r\\n"\n'
    )
    (tmp_path / "scans.script").write_text('text "4006381333931\\r\\n"\ntext "ABC-123\\r\\n"\n')
    (tmp_path / "members.yaml").write_text(f"{card_hash(MEMBER_UID, SECRET.encode())}: member-42\n")
    body = (
        "serial:\n"
        "  - {name: desk-rfid, type: ascii-reader, script: cards.script, realtime: false}\n"
        "  - {name: till, type: barcode, script: scans.script, realtime: false}\n"
        "identity:\n"
        "  cards: {secret_env: TEST_CARD_SECRET, registry: members.yaml}\n"
    )
    config = parse_config(config_text(tmp_path / "state", body), base_dir=tmp_path)
    return Agent(LoadedConfig(config, tmp_path / "store.yaml", "0" * 64), sink, replay=True)


def test_taps_and_scans_from_byte_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CARD_SECRET", SECRET)
    sink = MemorySink()
    with agent_for(tmp_path, sink) as agent:
        assert agent.wait_finished(timeout=30)
    payloads = [e.to_payload() for e in sink.events]
    for payload in payloads:
        validate_payload(payload)
        assert MEMBER_UID not in str(payload) and STRANGER_UID not in str(payload)
    taps = [p for p in payloads if p["type"] == "card.tapped"]
    assert [t.get("member_id") for t in taps] == ["member-42", None]
    assert "card_hash" not in taps[0] or taps[0]["card_hash"] is None
    assert taps[1]["card_hash"] == "hmac-sha256:" + card_hash(STRANGER_UID, SECRET.encode())
    scans = [p["code"] for p in payloads if p["type"] == "barcode.scanned"]
    assert scans == ["4006381333931", "ABC-123"]


def test_card_reader_without_a_secret_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_CARD_SECRET", raising=False)
    with pytest.raises(AgentError, match=r"identity\.cards: card secret: environment variable TEST_CARD_SECRET"):
        agent_for(tmp_path, MemorySink()).start()


def test_a_tap_at_a_placed_reader_identifies_the_person_standing_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``identity.cards.placements``: a member's tap on a reader placed beside a camera gives the person track
    whose box holds ``point`` that member; without a placement the tap identifies no track."""
    from contextlib import ExitStack

    from agent.pipelines.serial import SerialEventsSettings
    from agent.pipelines.serial.stage import build
    from agent.runtime.wiring import build_shared
    from drivers.base import EndOfStream
    from drivers.registry import create_driver

    monkeypatch.setenv("TEST_CARD_SECRET", SECRET)
    (tmp_path / "cards.script").write_text(f'text "{MEMBER_UID}\\r\\n"\n')
    (tmp_path / "members.yaml").write_text(f"{card_hash(MEMBER_UID, SECRET.encode())}: member-42\n")

    def tap(placements: str) -> dict[str, str | None]:
        body = (
            "cameras:\n  - {name: door, type: test-pattern}\n"
            "serial:\n  - {name: desk-rfid, type: ascii-reader, script: cards.script, realtime: false}\n"
            f"identity:\n  cards: {{secret_env: TEST_CARD_SECRET, registry: members.yaml, placements: {placements}}}\n"
        )
        config = parse_config(config_text(tmp_path / "state", body), base_dir=tmp_path)
        with ExitStack() as stack:
            shared = build_shared(config, stack)
            (stage,) = build(SerialEventsSettings(enabled=True), shared)
            # what the people pipeline publishes: one person at the desk, one near the door
            shared.identities.publish_tracks("door", {"p-desk": (280, 300, 360, 470), "p-door": (20, 200, 90, 470)})
            with create_driver("serial", config.serial[0]) as reader:
                while True:
                    try:
                        read = reader.read(1.0)
                    except EndOfStream:
                        break
                    if read is not None:
                        list(stage.process(read))
            return {t: shared.identities.member_of("door", t) for t in ("p-desk", "p-door")}

    assert tap("[{reader: desk-rfid, camera: door, point: [320, 400]}]") == {"p-desk": "member-42", "p-door": None}
    assert tap("[]") == {"p-desk": None, "p-door": None}
