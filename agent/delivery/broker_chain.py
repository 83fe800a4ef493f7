"""A chain of brokers: each store's mosquitto bridged to the chain's broker, as generated, tested files.

The hub does not connect to hundreds of store brokers; each store broker carries its store's traffic to the chain
broker over one MQTT 5 bridge connection, and the hub's processes connect to the chain broker only:

- **out** (store → chain): every terminal's ``status``, ``health``, ``events/#`` (member announcements included)
  and ``cmd/+/reply`` under ``<prefix>/<store>/``;
- **in** (chain → store): commands and acks for the store's terminals and the retained member states of that
  store (``<prefix>/<store>/_members/#``), nothing of another store.

Topics are the same on both sides (no remapping): the hub's signatures and the terminals' MACs cover the topic.
On the chain broker each store's bridge logs in with its own account (``bridge-<store>``) that may only use its
store's topics, so a compromised store broker cannot read or forge another store's traffic; hub accounts read
every store and send commands, acks and member states.

The bridge is a persistent session (``cleansession false``): while the chain broker is away the store broker
queues what its terminals publish and sends it on reconnection. The other way it is not: mosquitto's MQTT 5
bridge sends no session expiry interval, so the chain broker drops the bridge's session when it disconnects and
does not queue commands for a store whose bridge is down. Nothing depends on that queue: member states are
retained (the bridge's subscription brings them back), the fleet coordinator sends an unconfirmed erasure again,
and a terminal sends again every event the hub has not acknowledged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agent.config.schema import ID_PATTERN
from agent.delivery.broker_security import (
    MAX_INFLIGHT_MESSAGES,
    MAX_PACKET_SIZE,
    MAX_QUEUED_BYTES,
    MAX_QUEUED_MESSAGES,
    BrokerConf,
    BrokerSecurityError,
    Grants,
    check_account_name,
)

MEMBERS = "_members"
DEFAULT_CHAIN_HUB_ACCOUNTS = ("hub",)
_PREFIX_PATTERN = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"
_ADDRESS_PATTERN = r"^[A-Za-z0-9.:\[\]-]+:[0-9]{1,5}$"


def bridge_account(store_id: str) -> str:
    """The chain account of a store's bridge."""
    return f"bridge-{store_id}"


def bridge_topics(prefix: str, store_id: str) -> list[tuple[str, str]]:
    """``(pattern, direction)`` pairs of one store's bridge; directions as mosquitto names them (out: to the
    chain)."""
    base = f"{prefix}/{store_id}"
    return [
        (f"{base}/+/status", "out"),
        (f"{base}/+/health", "out"),
        (f"{base}/+/events/#", "out"),
        (f"{base}/+/cmd/+/reply", "out"),
        (f"{base}/+/cmd/+", "in"),
        (f"{base}/+/ack", "in"),
        (f"{base}/{MEMBERS}/#", "in"),
    ]


def store_grants(prefix: str, store_id: str) -> Grants:
    """What a store's bridge may do on the chain broker: the reverse of nothing more than its own topics."""
    topics = bridge_topics(prefix, store_id)
    return Grants(
        write=tuple(t for t, d in topics if d == "out"),
        read=tuple(t for t, d in topics if d == "in"),
    )


def hub_grants(prefix: str) -> Grants:
    """A hub account on the chain broker: reads every store; sends commands, acks and member states."""
    return Grants(
        write=(f"{prefix}/+/+/cmd/+", f"{prefix}/+/+/ack", f"{prefix}/+/{MEMBERS}/#"),
        read=(f"{prefix}/#",),
    )


def _check_prefix(prefix: str) -> None:
    if not re.fullmatch(_PREFIX_PATTERN, prefix):
        raise BrokerSecurityError(f"topic prefix {prefix!r} is not valid ({_PREFIX_PATTERN})")


def _check_store(store_id: str) -> None:
    if not re.fullmatch(ID_PATTERN, store_id):
        raise BrokerSecurityError(f"store id {store_id!r} is not a valid id ({ID_PATTERN})")


@dataclass(frozen=True)
class BridgeTls:
    """The bridge's side of TLS to the chain broker: the CA that signed the chain broker's certificate, and an
    optional client certificate (then the chain's listener takes its CN as the account)."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class Bridge:
    """One store broker's connection to the chain broker."""

    store_id: str
    address: str
    prefix: str = "store"
    username: str | None = None
    password: str | None = None
    tls: BridgeTls | None = None

    def __post_init__(self) -> None:
        _check_store(self.store_id)
        _check_prefix(self.prefix)
        if not re.fullmatch(_ADDRESS_PATTERN, self.address):
            raise BrokerSecurityError(f"bridge address {self.address!r} is not HOST:PORT")
        port = int(self.address.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise BrokerSecurityError(f"bridge address {self.address!r}: {port} is not a port")
        check_account_name(self.account, "bridge account")
        if self.password is not None and (not self.password or any(c in self.password for c in " \r\n#")):
            raise BrokerSecurityError("the bridge password is empty or contains a space, '#' or a line end")

    @property
    def account(self) -> str:
        return self.username or bridge_account(self.store_id)

    @property
    def connection(self) -> str:
        return f"chain-{self.store_id}"


def bridge_conf(bridge: Bridge) -> str:
    """A ``conf.d`` snippet with the store broker's ``connection`` block to the chain broker."""
    host, port = bridge.address.rsplit(":", 1)
    lines = [
        f"# Bridge of store {bridge.store_id} to the chain broker, generated by `store-agent broker config --bridge`.",
        "# Out: the store's status, health, events and replies; in: commands, acks and member states of this",
        "# store only. Topics are not remapped (signatures and MACs cover them). See docs/fleet.md.",
        "# mosquitto 2.0's MQTT 5 bridge announces max_inflight_messages as its Receive Maximum: 0 (unlimited)",
        "# would be a protocol error that the chain broker answers by closing the connection.",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        f"connection {bridge.connection}",
        f"address {host.strip('[]')}:{port}",
        "bridge_protocol_version mqttv50",
        "# A persistent session: what terminals publish while the chain broker is away is queued here.",
        "cleansession false",
        "local_cleansession false",
        f"remote_clientid {bridge.account}",
        f"local_clientid {bridge.connection}-local",
        "# Reconnect after 1 s, backing off (with jitter) to 4 s while the chain broker stays away: a store is",
        "# back in step within seconds of the chain broker's return.",
        "restart_timeout 1 4",
        "keepalive_interval 30",
        "start_type automatic",
        "notifications true",
        "notifications_local_only true",
        f"bridge_max_packet_size {MAX_PACKET_SIZE}",
    ]
    if bridge.username is not None or bridge.password is not None:
        lines.append(f"remote_username {bridge.account}")
    if bridge.password is not None:
        lines.append(f"remote_password {bridge.password}")
    if bridge.tls is not None:
        lines += [f"bridge_cafile {bridge.tls.ca_file}", "bridge_tls_version tlsv1.2", "bridge_insecure false"]
        if bridge.tls.cert_file is not None and bridge.tls.key_file is not None:
            lines += [f"bridge_certfile {bridge.tls.cert_file}", f"bridge_keyfile {bridge.tls.key_file}"]
    lines += [f"topic {pattern} {direction} 1" for pattern, direction in bridge_topics(bridge.prefix, bridge.store_id)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ChainBroker:
    """The accounts of the chain broker: one bridge per store, and the hub's accounts."""

    stores: tuple[str, ...]
    prefix: str = "store"
    hub_accounts: tuple[str, ...] = DEFAULT_CHAIN_HUB_ACCOUNTS

    def __post_init__(self) -> None:
        if not self.stores:
            raise BrokerSecurityError("give at least one store")
        for store in self.stores:
            _check_store(store)
        if len(set(self.stores)) != len(self.stores):
            raise BrokerSecurityError("a store is listed twice")
        _check_prefix(self.prefix)
        if not self.hub_accounts:
            raise BrokerSecurityError("give at least one hub account")
        for name in self.hub_accounts:
            check_account_name(name, "hub account")
        names = self.accounts
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise BrokerSecurityError(f"account name used twice: {', '.join(clash)}")

    @property
    def bridge_accounts(self) -> dict[str, str]:
        """Account name to store id."""
        return {bridge_account(s): s for s in self.stores}

    @property
    def accounts(self) -> list[str]:
        return [*self.hub_accounts, *self.bridge_accounts]

    def grants(self, account: str) -> Grants:
        if account in self.hub_accounts:
            return hub_grants(self.prefix)
        store = self.bridge_accounts.get(account)
        if store is None:
            raise BrokerSecurityError(f"no account {account!r} on the chain broker")
        return store_grants(self.prefix, store)


def chain_acl_file(layout: ChainBroker) -> str:
    """The chain broker's ``acl_file``: each store's bridge its own store, the hub accounts every store."""
    lines = [
        f"# mosquitto acl_file of the chain broker (topic prefix {layout.prefix}), generated by",
        "# `store-agent broker chain`. Each store's bridge may only use its own store's topics; hub accounts read",
        "# every store and send commands, acks and member states. Anything not listed is denied.",
    ]
    for account in layout.accounts:
        grants = layout.grants(account)
        store = layout.bridge_accounts.get(account)
        comment = f"bridge of store {store}" if store else "hub: every store; commands, acks, member states"
        lines += ["", f"# {comment}", f"user {account}"]
        lines += [f"topic write {t}" for t in grants.write]
        lines += [f"topic read {t}" for t in grants.read]
    return "\n".join(lines) + "\n"


def chain_mosquitto_conf(layout: ChainBroker, conf: BrokerConf, tls_identity: bool = False) -> str:
    """The chain broker's ``conf.d`` snippet: one listener, accounts with passwords (or client certificates)."""
    lines = [
        f"# mosquitto settings of the chain broker ({len(layout.stores)} stores), generated by `store-agent broker "
        "chain`.",
        "# Install: docs/fleet.md (Deploying a chain).",
        "",
        "allow_anonymous false",
    ]
    if conf.tls is None or not tls_identity:
        lines.append(f"password_file {conf.install_dir / 'passwd'}")
    lines += [
        f"acl_file {conf.install_dir / 'acl'}",
        "",
        f"max_packet_size {MAX_PACKET_SIZE}",
        "# The hub's consumers hold persistent sessions: the broker queues every store's events while they are away.",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        "",
        f"listener {conf.port}{' ' + conf.bind if conf.bind else ''}",
    ]
    if conf.tls is not None:
        lines += [
            f"cafile {conf.tls.ca_file}",
            f"certfile {conf.tls.cert_file}",
            f"keyfile {conf.tls.key_file}",
            "tls_version tlsv1.2",
        ]
        if tls_identity:
            lines += ["require_certificate true", "use_identity_as_username true"]
    lines += [
        "# The client id is the account: no store's bridge can take over another's session.",
        "use_username_as_clientid true",
    ]
    return "\n".join(lines) + "\n"
