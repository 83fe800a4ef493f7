"""Store-wide members with real terminals: enrol at one, recognised at the others, erased everywhere with proof.

Three real agents (``store-agent run`` subprocesses with their own state directories), one mosquitto, the hub's
fleet coordinator, real face models and photos. Terminals b and c watch a looping door camera showing the member
(a probe photo, not an enrolment photo); a is the kiosk where the member is enrolled from photos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.delivery.broker import Mosquitto
from agent.hub.fleet import FleetCoordinator
from agent.hub.fleet_store import FLEET_FILE, FleetStore
from agent.identity.sync import member_ref
from tests.conftest import require_data
from tests.delivery.conftest import TEST_HUB, Listener, need_mosquitto
from tests.fleet.conftest import STORE, Store, ask, dump, events_of, jpeg_b64, make_store, wait_until

MEMBER = "m-obama"
LATE = "m-biden"
pytestmark = pytest.mark.slow


def _identified(listener: Listener, terminal: str, member: str) -> bool:
    return any(e.get("member_id") == member for e in events_of(listener, "shopper.identified", terminal))


def _enrol(listener: Listener, terminal: str, member: str, person: str, coverage: str) -> dict[str, Any]:
    photos = sorted(require_data(f"media/faces/enroll/{person}").glob("*.jpg"))
    consent = {"reference": f"form-{member}", "coverage": coverage}
    reply = ask(
        listener,
        terminal,
        "enroll-member",
        {"member_id": member, "consent": consent, "images": [jpeg_b64(p) for p in photos[:2]]},
    )
    assert reply["ok"], reply
    return reply


def _members(listener: Listener, terminal: str) -> list[str]:
    reply = ask(listener, terminal, "list-members", {})
    assert reply["ok"], reply
    return [m["member_id"] for m in reply["result"]["members"]]


def test_enrolled_at_one_terminal_recognised_at_all_erased_everywhere_with_proof(
    tmp_path: Path, models_dir: Path
) -> None:
    need_mosquitto()
    broker = Mosquitto(tmp_path / "mosquitto").start()
    store: Store = make_store(tmp_path, {"a": broker.port, "b": broker.port, "c": broker.port}, models_dir, {"b", "c"})
    fleet = FleetStore(tmp_path / "hub" / FLEET_FILE)
    registry = store.registry(tmp_path / "hub" / "terminals.yaml")
    settings = store.terminals["a"]
    from agent.config.loader import load_config

    mqtt = load_config(settings.config).config.mqtt
    coordinator = FleetCoordinator(mqtt, fleet, TEST_HUB, registry, retry_s=2.0, client_id="fleet-test")
    listener = Listener(
        broker.port, [f"store/{STORE}/+/events/+", f"store/{STORE}/+/cmd/+/reply", f"store/{STORE}/+/health"], "fl"
    )
    try:
        coordinator.start()
        for terminal in store.terminals.values():
            terminal.start()
        for name in "abc":
            assert listener.wait(lambda m, n=name: any(t == f"store/{STORE}/{n}/health" for t, _ in m), timeout=90), (
                store.terminals[name].log()
            )

        # A member consenting for this terminal only stays at a.
        _enrol(listener, "a", "m-local", "obama", "terminal")
        # The member consenting for the store is announced, merged and imported by b and c.
        _enrol(listener, "a", MEMBER, "obama", "store")
        assert listener.wait(lambda m: len(events_of(listener, "member.enrolled", "a")) == 1, timeout=15)
        announced = events_of(listener, "member.enrolled", "a")[0]
        assert announced["member_id"] == MEMBER and announced["consent"]["coverage"] == "store"
        assert {"origin", "nonce", "ct"} == set(announced["templates"][0]), "sealed templates only"
        recognised = {
            name: wait_until(lambda n=name: listener.wait(lambda m, n=n: _identified(listener, n, MEMBER), 0.2), 60)
            for name in "bc"
        }
        print(f"\nenrolled at a -> identified at b after {recognised['b']} s, at c after {recognised['c']} s")
        assert all(v is not None for v in recognised.values()), dump(coordinator.stats)
        assert _members(listener, "b") == [MEMBER] and _members(listener, "c") == [MEMBER]
        assert "m-local" in _members(listener, "a")

        # Erase at c: the hub erases the member at a and b and collects each terminal's signed confirmation.
        reply = ask(listener, "c", "erase-member", {"member_id": MEMBER})
        assert reply["ok"] and reply["result"]["was_enrolled"], reply
        ref = member_ref(STORE, MEMBER)

        def confirmed() -> bool:
            progress = [p for p in fleet.progress(STORE) if p.member_ref == ref]
            return bool(progress) and progress[0].done

        took = wait_until(confirmed, 60)
        progress = next(p for p in fleet.progress(STORE) if p.member_ref == ref)
        print(f"erased at c -> {progress.line()} after {took} s")
        assert took is not None, progress.line()
        assert progress.confirmed == ["a", "b", "c"] and progress.line() == "erased on 3 of 3 terminals"
        for name in "abc":
            assert MEMBER not in _members(listener, name)
        assert "m-local" in _members(listener, "a"), "a terminal-only member is not touched"

        # A terminal that was away catches up from the retained states when it starts again.
        store.terminals["b"].stop()
        _enrol(listener, "a", LATE, "biden", "store")
        assert wait_until(lambda: any(m["member_id"] == LATE for m in fleet.members(STORE)), 30)
        seen = len(listener.messages)
        store.terminals["b"].start()
        assert listener.wait(lambda m: any(t == f"store/{STORE}/b/health" for t, _ in m[seen:]), timeout=60), (
            store.terminals["b"].log()
        )
        caught_up = wait_until(lambda: LATE in _members(listener, "b"), 30, step=0.5)
        print(f"b restarted -> caught up with {LATE} after {caught_up} s")
        assert caught_up is not None, store.terminals["b"].log()
        assert MEMBER not in _members(listener, "b"), "the erasure stays: b does not bring the member back"
        listener.wait(lambda m: False, 2.5)
        health = [p for t, p in listener.messages if t == f"store/{STORE}/b/health"][-1]
        assert health["member_sync"]["behind"] == 0 and health["member_sync"]["refused"] == 0, health
    finally:
        listener.close()
        store.stop()
        coordinator.stop()
        fleet.close()
        broker.stop()
