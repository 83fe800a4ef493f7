"""What trust costs: checking a signed command, a signed ack batch, and MACing / checking one event.

Usage::

    python bench/trust_bench.py [--rounds 2000]

Prints medians in microseconds on this machine. The command figure includes everything the terminal does before
a handler runs (signature, JSON, times, the nonce written durably to SQLite); the ack batch carries 500 event ids
(the monitor's largest); the event figures are per message.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agent.events import compact_json, new_event_id
from agent.trust.commands import CommandAuthority
from agent.trust.keys import HubPrivateKey, TerminalKey, load_or_create_terminal_key
from agent.trust.messages import (
    AckCheck,
    HubVerifier,
    TerminalRegistry,
    TerminalSealer,
    Verdict,
    check_hub_signature,
    signed_ack,
    signed_command,
)
from agent.trust.nonces import NonceStore

TOPIC = "store/s1/t1"


def median_us(rounds: int, step: Callable[[int], object]) -> float:
    times = []
    for i in range(rounds):
        started = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    hub = HubPrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        terminal: TerminalKey = load_or_create_terminal_key(Path(tmp) / "terminal.key")
        nonces = NonceStore(Path(tmp) / "nonces.sqlite3")
        authority = CommandAuthority([hub.public], nonces, ())
        commands = [
            signed_command(hub, f"{TOPIC}/cmd/erase-member", {"request_id": str(i), "member_id": "M-1"})
            for i in range(args.rounds)
        ]

        def check_command(i: int) -> None:
            verified = authority.unwrap(f"{TOPIC}/cmd/erase-member", "erase-member", commands[i], False)
            authority.admit(verified, json.loads(verified.body))

        command_us = median_us(args.rounds, check_command)
        nonces.close()

    keys = {hub.kid: hub.public}
    ids = [new_event_id() for _ in range(500)]
    ack = signed_ack(hub, f"{TOPIC}/ack", ids)
    ack_us = median_us(args.rounds, lambda i: check_hub_signature(keys, f"{TOPIC}/ack", ack)[0] is AckCheck.OK)

    sealer = TerminalSealer(terminal, hub.public, "s1", "t1")
    event = compact_json({"type": "zone.entered", "event_id": new_event_id(), "camera": "door", "zone": "till"})
    body = event.encode()
    seal_us = median_us(args.rounds * 5, lambda i: sealer.seal(f"{TOPIC}/events/zone.entered", body))
    registry = TerminalRegistry()
    registry.add("s1", "t1", terminal.line())
    verifier = HubVerifier([hub], registry)
    sealed = sealer.seal(f"{TOPIC}/events/zone.entered", body)
    check_us = median_us(
        args.rounds * 5,
        lambda i: verifier.verify(f"{TOPIC}/events/zone.entered", "s1", "t1", sealed) is Verdict.VERIFIED,
    )
    print(f"trust costs on {platform.machine()} (Python {platform.python_version()}), medians")
    print(f"  terminal checks a signed command (Ed25519 + nonce on disk)   {command_us:8.1f} us")
    print(f"  terminal checks a signed ack of 500 event ids                {ack_us:8.1f} us")
    print(f"  terminal MACs one event as it publishes it                   {seal_us:8.1f} us")
    print(f"  hub checks one event's MAC                                   {check_us:8.1f} us")


if __name__ == "__main__":
    main()
