"""Settings that are valid but unsafe or surprising: ``check-config`` prints them, the daemon logs them at start."""

from __future__ import annotations

import ipaddress

from agent.config.schema import StoreConfig

#: Commands that change state or reveal members; opening one (trust.open_commands) deserves a warning.
PRIVILEGED = ("enroll-member", "erase-member", "list-members", "reload-config", "set-log-level")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_warnings(config: StoreConfig) -> list[str]:
    mqtt, trust = config.mqtt, config.trust
    out: list[str] = []
    credentials = mqtt.username or mqtt.password_env or mqtt.password_credential
    if credentials and mqtt.tls is None and not _loopback(mqtt.host):
        out.append(
            f"mqtt: the broker password goes over plain TCP to {mqtt.host}:{mqtt.port}, readable by anyone on the "
            "network; set mqtt.tls (docs/broker-security.md)"
        )
    if not trust.hub_keys and not trust.hub_keys_credential:
        out.append(
            "trust.hub_keys is empty: no command but "
            f"{', '.join(trust.open_commands) or 'none'} will run, and events carry no MAC a hub can check"
        )
    opened = sorted(set(trust.open_commands) & set(PRIVILEGED))
    if opened:
        out.append(f"trust.open_commands lets anyone on the broker run {', '.join(opened)} without the hub's signature")
    if mqtt.protocol == "3.1.1":
        out.append(
            "mqtt.protocol 3.1.1: no maximum packet size (a huge publish is read into memory) and a retained command "
            "is recognised only at subscription; prefer 5"
        )
    if mqtt.ack == "hub" and not trust.hub_keys and not trust.hub_keys_credential:
        out.append(
            "mqtt.ack: hub with no trust.hub_keys: no hub ack can be verified, so events never leave the outbox; "
            "list the hub's hub.pub in trust.hub_keys"
        )
    if mqtt.ack == "broker":
        out.append(
            "mqtt.ack: broker deletes an event on the broker's PUBACK, before any hub stored it; production stores "
            "use ack: hub (docs/mqtt.md)"
        )
    return out
