"""Erasure reaches the hub's event store: an erased member's past events do not outlive them there.

A real event store file (the one ``hub serve`` consumers share) holds one event of every type that can name a
member, for two members, as terminals emit them (validated against the schemas). An erasure announced by a terminal
(a ``member.erased`` event stored like any other) and one started by the hub (``hub fleet erase``, the real
command) each delete the member's events, leave none of their bytes in the file, keep the other member's, and
refuse a copy of an old event a terminal sends again afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.events import EventStamper, compact_json
from agent.hub.consumer import store_path
from agent.hub.store import EventStore, StoredEvent
from agent.identity.sync import MemberErased, member_ref
from agent.schemas import validate_payload
from agent.trust.keys import terminal_line
from tests.conftest import REPO
from tests.identity.test_erasure_leaves_nothing import KEEP, MEMBER, anonymous_bodies, bodies

GONE, KEPT = MEMBER, KEEP  # the terminal-side erasure test's members (non-ASCII id, consent records)


def _stored(events: list[tuple[str, dict[str, object]]]) -> list[StoredEvent]:
    return [
        StoredEvent(
            str(p["event_id"]), str(p["store_id"]), str(p["terminal_id"]), t, int(str(p["seq"])), compact_json(p)
        )
        for t, p in events
    ]


def _fill(store: EventStore) -> list[StoredEvent]:
    stamper = EventStamper("s1", "t1", iter(range(1, 10_000)).__next__)
    made = []
    for body in [*bodies(GONE), *bodies(KEPT), *anonymous_bodies()]:
        event = stamper.stamp(body)
        validate_payload(event.to_payload())
        made.append((event.type, event.to_payload()))
    rows = _stored(made)
    assert store.add(rows) == len(rows)
    return rows


def _bytes_of(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state.iterdir() if p.is_file())


def _named(state: Path, member: str) -> bool:
    data = _bytes_of(state)
    return (
        member.encode() in data
        or member.encode("ascii", "backslashreplace") in data
        or (member.encode("unicode_escape") in data)
    )


def test_an_erasure_announced_by_a_terminal_deletes_the_members_events_at_the_hub(tmp_path: Path) -> None:
    store = EventStore(store_path(tmp_path), "hub-0")
    rows = _fill(store)
    named = [r for r in rows if GONE in r.payload]
    assert len(named) >= 8 and _named(tmp_path, GONE)  # people, zone, face, speech, product and card events

    stamper = EventStamper("s1", "t2", iter(range(1, 100)).__next__)
    erased = stamper.stamp(MemberErased(captured_at=1.0, member_ref=member_ref("s1", GONE), reason="request"))
    validate_payload(erased.to_payload())
    assert store.add(_stored([(erased.type, erased.to_payload())])) == 1

    assert store.count() == len(rows) - len(named) + 1
    # what stays names no one: which events went (id, terminal, seq), so the hub can show nothing went missing
    assert sorted(e for _, _, _, e in store.erased_events()) == sorted(r.event_id for r in named)
    assert not _named(tmp_path, GONE), "the erased member's bytes are still in the event store's files"
    assert _named(tmp_path, KEPT)  # exact: the other member stays
    again = store.add([named[0]])  # a terminal sends an old copy again after the erasure
    assert again == 0 and store.refused_erased == 1 and not _named(tmp_path, GONE)
    assert named[0].event_id in {e for *_, e in store.erased_events()}  # accounted for, once
    store.close()


def test_hub_fleet_erase_deletes_the_members_events_from_the_event_store(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made = subprocess.run([sys.executable, "-m", "agent", "hub", "keygen", "--out", str(keys)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    terminal = terminal_line(X25519PrivateKey.generate().public_key())
    registered = subprocess.run(
        [sys.executable, "-m", "agent", "hub", "register", "--terminals", str(keys / "terminals.yaml"), "s1", "t1",
         terminal], cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    store = EventStore(store_path(tmp_path), "hub-0")
    rows = _fill(store)
    store.close()
    run = subprocess.run(
        [sys.executable, "-m", "agent", "hub", "fleet", "erase", "--state-dir", str(tmp_path), "--key",
         str(keys / "hub.key"), "--store", "s1", "--member-id", GONE, "--wait", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    named = sum(GONE in r.payload for r in rows)
    assert f"hub event store: {named} events of {member_ref('s1', GONE)} deleted" in run.stdout, run.stdout + run.stderr
    assert run.returncode == 75  # the terminal has not confirmed (no coordinator runs here): pending
    assert not _named(tmp_path, GONE) and _named(tmp_path, KEPT)
