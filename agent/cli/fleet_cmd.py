"""``store-agent hub fleet``: store-wide members and erasures with proof, on the hub (docs/fleet.md).

    store-agent hub fleet run      --config chain.yaml --key hub.key --state-dir /var/lib/store-hub
    store-agent hub fleet erase    --state-dir /var/lib/store-hub --key hub.key --store S --member-id M [--wait 60]
    store-agent hub fleet erasures --state-dir /var/lib/store-hub [--store S]
    store-agent hub fleet members  --state-dir /var/lib/store-hub --store S
    store-agent hub fleet cards    --state-dir /var/lib/store-hub --store S --member-id M --add HASH --remove HASH

``run`` is the coordinator (one per chain; it alone publishes member states). The other actions work on its
state file and leave the publishing and the commands to it. ``erase`` exits 0 when every terminal of the store
confirmed within ``--wait``, 75 when some have not yet (it names them; the coordinator keeps asking them), 1 when
the store has no registered terminal. ``cards`` exits 1 for an erased member or a card that belongs to someone
else (a member the store does not know yet becomes one known by card).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from agent.cli import EXIT_FAILURE, EXIT_OK, add_config_option

#: Some terminals have not confirmed an erasure yet (sysexits EX_TEMPFAIL: the coordinator keeps asking).
EXIT_PENDING = 75
DEFAULT_REGISTRY = "terminals.yaml"
_HASH_PREFIX = "hmac-sha256:"


def register(actions: Any) -> None:
    fleet = actions.add_parser("fleet", help="store-wide members and erasures with proof (coordinator and tools)")
    sub = fleet.add_subparsers(dest="fleet_action", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run the fleet coordinator (one per chain)")
    add_config_option(run, help="a YAML file with the chain broker (mqtt)")
    run.add_argument("--retry", type=float, default=30.0, help="seconds between erase-member tries (default 30)")
    erase = sub.add_parser("erase", help="erase a member on every terminal of a store, and wait for the proof")
    erase.add_argument("--store", required=True)
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--member-id")
    who.add_argument("--member-ref", help="32 hex digits, as member.erased names the member")
    erase.add_argument("--reason", default="request")
    erase.add_argument("--wait", type=float, default=60.0, help="seconds to wait for every terminal (default 60)")
    erasures = sub.add_parser("erasures", help="every erasure and which terminals confirmed it")
    erasures.add_argument("--store")
    members = sub.add_parser("members", help="the store's shared members (ids, versions, terminals, cards)")
    members.add_argument("--store", required=True)
    cards = sub.add_parser("cards", help="add or remove a member's cards (keyed hashes) on every terminal")
    cards.add_argument("--store", required=True)
    cards.add_argument("--member-id", required=True)
    cards.add_argument("--add", action="append", default=[], metavar="HASH", help="card hash to add (repeatable)")
    cards.add_argument("--remove", action="append", default=[], metavar="HASH", help="card hash to remove")
    for p in sub.choices.values():
        p.add_argument("--state-dir", type=Path, required=True, help="the coordinator's state directory")
        if p in (run, erase):
            p.add_argument("--key", type=Path, required=True, help="the hub's private key (hub.key)")
            p.add_argument(
                "--terminals", type=Path, help=f"registry of terminal keys (default: {DEFAULT_REGISTRY} beside --key)"
            )
    fleet.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from agent.hub.fleet_store import FLEET_FILE, FleetStore

    store = FleetStore(args.state_dir / FLEET_FILE)
    try:
        action = {"run": _run, "erase": _erase, "erasures": _erasures, "members": _members, "cards": _cards}
        return action[args.fleet_action](args, store)
    finally:
        store.close()


def _registry(args: argparse.Namespace) -> Any:
    from agent.trust.messages import TerminalRegistry

    return TerminalRegistry.load(args.terminals or args.key.parent / DEFAULT_REGISTRY)


def _run(args: argparse.Namespace, store: Any) -> int:
    from agent.cli.hub_cmd import read_hub_key
    from agent.config.loader import load_config
    from agent.hub.fleet import FleetCoordinator

    config = load_config(args.config).config
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    coordinator = FleetCoordinator(config.mqtt, store, read_hub_key(args.key), _registry(args), retry_s=args.retry)
    with coordinator:
        print(
            f"fleet coordinator on {config.mqtt.host}:{config.mqtt.port} under {config.mqtt.topic_prefix}/",
            file=sys.stderr,
        )
        while not stop.wait(1.0):
            pass
    print(f"fleet coordinator stopped: {coordinator.stats}", file=sys.stderr)
    return EXIT_OK


def _erase(args: argparse.Namespace, store: Any) -> int:
    from agent.hub.consumer import store_path
    from agent.hub.store import EventStore
    from agent.identity.sync import member_ref

    ref = args.member_ref or member_ref(args.store, args.member_id)
    terminals = sorted(t for s, t in _registry(args).keys if s == args.store)
    if not terminals:
        print(f"error: no terminal of store {args.store!r} is registered (hub register)", file=sys.stderr)
        return EXIT_FAILURE
    store.erased(args.store, ref, "hub", args.reason, time.time(), terminals)
    print(f"erasure of {ref} recorded for {len(terminals)} terminals of {args.store}; the coordinator sends it")
    events_file = store_path(args.state_dir)
    if events_file.is_file():  # hub serve keeps its events here: the member's go too
        events = EventStore(events_file, "fleet-erase")
        try:
            print(f"hub event store: {events.erase(args.store, ref)} events of {ref} deleted")
        finally:
            events.close()
    deadline = time.monotonic() + args.wait
    while True:
        progress = next(p for p in store.progress(args.store) if p.member_ref == ref)
        if progress.done or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    print(progress.line())
    return EXIT_OK if progress.done else EXIT_PENDING


def _erasures(args: argparse.Namespace, store: Any) -> int:
    for p in store.progress(args.store):
        print(f"{p.store_id} {p.member_ref} (by {p.requested_by}): {p.line()}")
    return EXIT_OK


def _members(args: argparse.Namespace, store: Any) -> int:
    for member in store.members(args.store):
        print(json.dumps(member))
    return EXIT_OK


def _cards(args: argparse.Namespace, store: Any) -> int:
    from agent.hub.fleet_store import FleetError
    from agent.identity.sync import member_ref

    def digest(text: str) -> str:
        text = text.removeprefix(_HASH_PREFIX).lower()
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise FleetError(f"{text!r} is not a card hash (64 hex digits, as the registry file holds them)")
        return text

    try:
        version = store.set_cards(
            args.store,
            member_ref(args.store, args.member_id),
            args.member_id,
            [digest(h) for h in args.add],
            [digest(h) for h in args.remove],
        )
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"cards of {args.member_id} updated (store version {version}); the coordinator publishes them")
    return EXIT_OK
