"""A store broker bridged to the chain broker, both running from the files `store-agent broker` generates.

Three real mosquitto processes: the chain broker (``broker chain``), store s1's and store s2's brokers
(``broker config --bridge``), each installed as a ``conf.d`` directory. Messages are probed over MQTT 5 with
reason codes: what crosses which way, what another store's bridge account may not do, and what survives a cut.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.cli import main as cli_main
from agent.config.schema import MqttSection
from agent.delivery.broker import Mosquitto, free_port
from agent.delivery.broker_chain import Bridge, bridge_conf, bridge_topics
from agent.delivery.client import Connected, Message, MqttConnection
from tests.delivery.test_broker_security import (
    ACCEPTED,
    NOT_AUTHORIZED,
    Probe,
    installed,
    need_mosquitto_tools,
    read_passwords,
)

PASSWORD_ENV = "FLEET_CHAIN_TEST_PASSWORD"


@dataclass
class Chain:
    root: Path
    chain_port: int
    store_ports: dict[str, int]
    chain: Mosquitto
    stores: dict[str, Mosquitto]
    chain_passwords: dict[str, str]
    store_passwords: dict[str, dict[str, str]]

    def at_chain(self, account: str, client_id: str | None = None) -> Probe:
        password = self.chain_passwords.get(account) or self.chain_passwords[account.rsplit("-", 1)[0]]
        probe = Probe(self.chain_port, account, password, client_id or account)
        assert probe.connect() == 0, f"{account} could not log in to the chain broker"
        return probe

    def at_store(self, store: str, account: str) -> Probe:
        probe = Probe(self.store_ports[store], account, self.store_passwords[store][account], account)
        assert probe.connect() == 0, f"{account} could not log in to store {store}'s broker"
        return probe


def _generate(root: Path) -> tuple[int, dict[str, int]]:
    chain_port = free_port()
    out = root / "chain"
    args = ["broker", "chain", "--store", "s1", "--store", "s2", "--hub-processes", "2"]
    args += ["--port", str(chain_port), "--bind", "127.0.0.1", "--install-dir", str(out), "--out", str(out)]
    assert cli_main(args) == 0
    ports = {}
    for store in ("s1", "s2"):
        ports[store] = free_port()
        here = root / store
        args = ["broker", "config", "--store", store, "--terminal", "a", "--port", str(ports[store])]
        args += ["--bind", "127.0.0.1", "--install-dir", str(here), "--out", str(here)]
        args += ["--bridge", f"127.0.0.1:{chain_port}", "--bridge-password-file", str(out / f"bridge-{store}.password")]
        assert cli_main(args) == 0
    return chain_port, ports


def _store_broker(root: Path, store: str, port: int) -> Mosquitto:
    here = root / store
    snippet = (here / "mosquitto.conf").read_text().splitlines() + (here / "store-bridge.conf").read_text().splitlines()
    return installed(root / f"run-{store}", port, snippet)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    need_mosquitto_tools()
    chain_port, ports = _generate(tmp_path)
    chain_broker = installed(
        tmp_path / "run-chain", chain_port, (tmp_path / "chain" / "mosquitto.conf").read_text().splitlines()
    )
    stores = {s: _store_broker(tmp_path, s, p) for s, p in ports.items()}
    generated = Chain(
        tmp_path,
        chain_port,
        ports,
        chain_broker,
        stores,
        read_passwords(tmp_path / "chain"),
        {s: read_passwords(tmp_path / s) for s in ports},
    )
    try:
        yield generated
    finally:
        for broker in (*stores.values(), chain_broker):
            broker.stop()


def _bridged(chain: Chain, store: str, timeout: float = 20.0) -> None:
    """Wait until the store's bridge is up: a marker published by the terminal reaches the chain broker."""
    hub = chain.at_chain("fleet", "fleet-wait")
    try:
        assert hub.subscribe(f"store/{store}/+/health") == [1]
        terminal = chain.at_store(store, f"{store}-a")
        try:
            import time

            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                terminal.publish(f"store/{store}/a/health", b'{"marker":true}')
                if hub.wait_until(lambda m: any(t == f"store/{store}/a/health" for t, _, _ in m), 0.5):
                    return
            raise AssertionError(f"store {store}'s bridge did not come up: {chain.stores[store].log.read_text()}")
        finally:
            terminal.close()
    finally:
        hub.close()


def test_generated_bridge_files() -> None:
    bridge = Bridge("s1", "chain.example:8883", password="pw")
    text = bridge_conf(bridge)
    assert "bridge_protocol_version mqttv50" in text and "cleansession false" in text
    assert "remote_clientid bridge-s1" in text and "remote_username bridge-s1" in text
    assert [line for line in text.splitlines() if line.startswith("topic ")] == [
        f"topic {t} {d} 1" for t, d in bridge_topics("store", "s1")
    ]
    assert all("/s1/" in t for t, _ in bridge_topics("store", "s1"))


def test_cli_files_and_modes(tmp_path: Path) -> None:
    need_mosquitto_tools()
    _generate(tmp_path)
    chain_files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "chain").iterdir()}
    assert chain_files["passwd"] == 0o600 and chain_files["bridge-s1.password"] == 0o600
    assert chain_files["acl"] == 0o644 and chain_files["hub.password"] == 0o600
    passwd = (tmp_path / "chain" / "passwd").read_text()
    assert {line.split(":")[0] for line in passwd.splitlines()} == {"hub-0", "hub-1", "fleet", "bridge-s1", "bridge-s2"}
    bridge = tmp_path / "s1" / "store-bridge.conf"
    assert stat.S_IMODE(bridge.stat().st_mode) == 0o600, "it holds the bridge's password"
    password = (tmp_path / "chain" / "bridge-s1.password").read_text().strip()
    assert f"remote_password {password}" in bridge.read_text()
    assert (
        cli_main(
            [
                "broker",
                "config",
                "--store",
                "s1",
                "--terminal",
                "a",
                "--out",
                str(tmp_path / "x"),
                "--bridge-ca",
                "ca.pem",
            ]
        )
        == 2
    )
    assert cli_main(["broker", "chain", "--store", "s1", "--store", "s1", "--out", str(tmp_path / "y")]) == 2


def test_messages_cross_in_the_right_directions_only(chain: Chain) -> None:
    for store in ("s1", "s2"):
        _bridged(chain, store)
    hub = chain.at_chain("hub-0")
    fleet = chain.at_chain("fleet")
    terminal = chain.at_store("s1", "s1-a")
    local_hub = chain.at_store("s1", "hub")  # the store broker's own hub account: it may command s1's terminals
    other = chain.at_store("s2", "s2-a")
    try:
        assert hub.subscribe("store/#") == [1]
        assert terminal.subscribe("store/s1/a/cmd/+", "store/s1/a/ack", "store/s1/_members/#") == [1, 1, 1]
        assert other.subscribe("store/s2/a/cmd/+", "store/s2/a/ack") == [1, 1]

        # Out: events, health, status and replies of the store reach the chain broker.
        for topic in ("store/s1/a/events/visitor.seen", "store/s1/a/cmd/ping/reply", "store/s1/a/status"):
            assert terminal.publish(topic, b'{"x":1}') == 0, topic
            hub.wait_for(topic)
        # In: commands and acks for the store's terminals, and the store's member states (retained).
        assert hub.publish("store/s1/a/cmd/ping", b'{"request_id":1}') in ACCEPTED
        assert hub.publish("store/s1/a/ack", b'{"event_ids":[]}') in ACCEPTED
        assert fleet.publish("store/s1/_members/manifest", b'{"version":1}', retain=True) in ACCEPTED
        for topic in ("store/s1/a/cmd/ping", "store/s1/a/ack", "store/s1/_members/manifest"):
            terminal.wait_for(topic)
        # Subscribing after it was published (the store's own hub account): the state is retained in the store.
        local_hub.subscribe("store/s1/_members/#")
        local_hub.wait_for("store/s1/_members/manifest")
        assert any(t == "store/s1/_members/manifest" and retained for t, _, retained in local_hub.messages)

        # Not the other way: a command published in the store does not leave it, and s2's traffic stays in s2.
        assert local_hub.publish("store/s1/a/cmd/local-only", b"{}") in ACCEPTED
        assert hub.publish("store/s2/a/cmd/ping", b'{"request_id":2}') in ACCEPTED
        other.wait_for("store/s2/a/cmd/ping")
        assert other.publish("store/s2/a/events/visitor.seen", b"{}") == 0
        hub.wait_for("store/s2/a/events/visitor.seen")
        terminal.publish("store/s1/a/events/fence", b"{}")
        hub.wait_for("store/s1/a/events/fence")
        assert "store/s1/a/cmd/local-only" not in hub.topics()
        assert not any("/s2/" in t for t in terminal.topics()), terminal.topics()
        assert not any("/s1/" in t for t in other.topics()), other.topics()
    finally:
        for probe in (hub, fleet, terminal, local_hub, other):
            probe.close()


def test_a_store_bridge_account_is_refused_another_stores_topics(chain: Chain) -> None:
    hub = chain.at_chain("hub-1")
    # The s1 bridge's account, logged in directly: another client id than the running bridge's takes its account's
    # id anyway (use_username_as_clientid), so give the bridge time to come back after this probe leaves.
    forger = chain.at_chain("bridge-s1", "anything")
    try:
        assert hub.subscribe("store/#") == [1]
        assert forger.publish("store/s2/a/events/visitor.seen", b"{}") == NOT_AUTHORIZED
        assert forger.publish("store/s2/a/status", b"{}") == NOT_AUTHORIZED
        assert forger.publish("store/s1/a/cmd/erase-member", b"{}") == NOT_AUTHORIZED, "a bridge cannot command"
        assert forger.publish("store/s1/a/ack", b"{}") == NOT_AUTHORIZED, "nor acknowledge"
        assert forger.publish("store/s1/_members/manifest", b"{}") == NOT_AUTHORIZED, "nor forge member states"
        assert forger.publish("store/s1/a/events/visitor.seen", b"{}") == 0
        forger.subscribe("store/#")
        assert hub.publish("store/s2/a/cmd/ping", b"{}") in ACCEPTED
        assert hub.publish("store/s1/a/cmd/ping", b"{}") in ACCEPTED
        forger.wait_for("store/s1/a/cmd/ping")
        assert "store/s2/a/cmd/ping" not in forger.topics()
    finally:
        hub.close()
        forger.close()


def test_a_cut_bridge_queues_events_not_commands(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chain broker down: the store broker queues its terminals' events and sends them on reconnection; the chain
    broker does not queue commands for a store whose bridge is down (mosquitto's MQTT 5 bridge asks for no
    session expiry), while the retained member states come back with the bridge's subscription."""
    _bridged(chain, "s1")
    monkeypatch.setenv(PASSWORD_ENV, chain.chain_passwords["hub"])
    settings = MqttSection(host="127.0.0.1", port=chain.chain_port, username="hub-0", password_env=PASSWORD_ENV)
    consumer = MqttConnection(settings, "hub-0", persistent_session=True)
    received: list[str] = []

    def pump(seconds: float) -> None:
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                item = consumer.inbox.get(timeout=0.05)
            except Exception:
                continue
            if isinstance(item, Connected):
                consumer.subscribe(["$share/hub/store/+/+/events/#"])
            elif isinstance(item, Message):
                received.append(item.topic)

    consumer.start()
    terminal = chain.at_store("s1", "s1-a")
    try:
        pump(1.0)
        assert terminal.publish("store/s1/a/events/before", b"{}") == 0
        pump(2.0)
        assert received == ["store/s1/a/events/before"], received

        chain.chain.stop()
        for i in range(5):
            assert terminal.publish(f"store/s1/a/events/cut-{i}", b"{}") == 0, "the bridge's session takes them"
        chain.chain.start()
        fleet = chain.at_chain("fleet")
        try:
            assert fleet.publish("store/s1/a/cmd/while-cut", b"{}") in ACCEPTED  # the bridge is not back yet
            fleet.publish("store/s1/_members/manifest", b'{"version":2}', retain=True)
        finally:
            fleet.close()
        terminal.subscribe("store/s1/a/cmd/+", "store/s1/_members/#")
        pump(15.0)
        assert received[1:] == [f"store/s1/a/events/cut-{i}" for i in range(5)], received
        terminal.wait_for("store/s1/_members/manifest", timeout=15)
        assert "store/s1/a/cmd/while-cut" not in terminal.topics(), "not queued for a bridge that was down"
    finally:
        terminal.close()
        consumer.stop()
