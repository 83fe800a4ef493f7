"""The broker as the second wall: `store-agent broker config`'s files in a real mosquitto, probed over MQTT 5.

Two stores share one broker here (their generated ACLs and password files concatenated, as a regional broker
would), so "another store" is a real neighbour with its own accounts. Refusals are read from MQTT 5 reason codes
(CONNACK, PUBACK, SUBACK) and from what a subscriber actually receives: with an ``acl_file`` mosquitto grants any
SUBSCRIBE and filters at delivery, the dynamic-security plugin refuses it in the SUBACK.
"""

from __future__ import annotations

import base64
import json
import signal
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.cli import main as cli_main
from agent.config.schema import MqttSection
from agent.delivery.broker import Mosquitto, free_port, mosquitto_binary
from agent.delivery.broker_security import (
    StoreBroker,
    acl_file,
    default_dynsec_plugin,
    dynsec_password,
    mosquitto_passwd_binary,
)
from agent.delivery.client import MqttConnection, Published
from agent.delivery.topics import Topics
from tests.delivery.conftest import start_agent, validator, write_config
from tests.delivery.test_tls import make_ca, make_cert
from tests.prereq import require, require_tool

NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86
NO_SUBSCRIBERS = 0x10
#: What ``Probe.publish`` returns when the broker closed the connection instead of acknowledging.
DROPPED = -1
#: PUBACK reason codes of an accepted publish (0x10: accepted, but nobody was subscribed at that moment).
ACCEPTED = (0, NO_SUBSCRIBERS)


def need_mosquitto_tools() -> None:
    if mosquitto_binary() is None or mosquitto_passwd_binary() is None:
        require("mosquitto", "mosquitto or mosquitto_passwd not installed (apt install mosquitto)")


# --- an MQTT 5 probe that reports reason codes -----------------------------------------------------


class Probe:
    """A paho MQTT 5 client that waits for each CONNACK, PUBACK and SUBACK and returns its reason codes."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        client_id: str = "probe",
        *,
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        # No reconnecting in the background: a probe that lost its session must not come back and take it again.
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, reconnect_on_failure=False
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.connack: int | None = None
        self.disconnect_reason: int | None = None
        self.disconnects = 0
        self.messages: list[tuple[str, bytes, bool]] = []
        self._acks: dict[int, list[int]] = {}
        self._done = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.host, self.port = host, port

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._done:
            self.connack = int(reason.value)
            self._done.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._done:
            self.disconnect_reason = int(reason.value)
            self.disconnects += 1
            if self.connack is None:
                self.connack = int(reason.value)
            self._done.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._done:
            self._acks[mid] = [int(reason.value)]
            self._done.notify_all()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        with self._done:
            self._acks[mid] = [int(r.value) for r in reasons]
            self._done.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._done:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self._done.notify_all()

    def connect(self, timeout: float = 10.0) -> int | None:
        """The CONNACK reason code (0 connected), or ``None`` when the connection closed without one."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        with self._done:
            self._done.wait_for(lambda: self.connack is not None, timeout)
        if self.connack != 0:  # no retries in the background
            self.client.disconnect()
            self.client.loop_stop()
        return self.connack

    def _wait_ack(self, mid: int, timeout: float) -> list[int]:
        with self._done:
            assert self._done.wait_for(lambda: mid in self._acks, timeout), f"no ack for message {mid}"
            return self._acks.pop(mid)

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False, timeout: float = 10.0) -> int:
        """The PUBACK reason code of a QoS 1 publish, or ``DROPPED`` if the broker closed the connection first."""
        before = self.disconnects
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._done:
            self._done.wait_for(lambda: info.mid in self._acks or self.disconnects > before, timeout)
            if info.mid not in self._acks and self.disconnects > before:
                return DROPPED
        return self._wait_ack(info.mid, timeout)[0]

    def subscribe(self, *filters: str) -> list[int]:
        """The SUBACK reason codes (granted QoS 1 is 1)."""
        _, mid = self.client.subscribe([(f, 1) for f in filters])
        assert mid is not None
        return self._wait_ack(mid, 10.0)

    def wait_until(self, predicate: Callable[[list[tuple[str, bytes, bool]]], bool], timeout: float = 10.0) -> bool:
        with self._done:
            return self._done.wait_for(lambda: predicate(self.messages), timeout)

    def wait_for(self, topic: str, timeout: float = 10.0) -> bytes:
        """The payload of the first message on ``topic``."""
        assert self.wait_until(lambda msgs: any(t == topic for t, _, _ in msgs), timeout), (
            f"{topic} never arrived; got {self.topics()}"
        )
        return next(p for t, p, _ in self.messages if t == topic)

    def topics(self) -> list[str]:
        with self._done:
            return [t for t, _, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def fence(sender: Probe, receiver: Probe, topic: str) -> None:
    """Publish a marker and wait for it: everything ``sender`` published before it has been routed by then."""
    assert sender.publish(topic, b'{"fence":true}') in ACCEPTED
    receiver.wait_for(topic)


# --- generated files, two stores on one broker -----------------------------------------------------


@dataclass
class Generated:
    port: int
    directory: Path
    passwords: dict[str, str]
    conf: list[str]

    def probe(self, account: str | None, client_id: str = "probe", password: str | None = None) -> Probe:
        secret = password if password is not None else (self.passwords[account] if account else None)
        return Probe(self.port, account, secret, client_id)

    def connected(self, account: str, client_id: str = "probe") -> Probe:
        probe = self.probe(account, client_id)
        assert probe.connect() == 0, f"{account} could not log in"
        return probe


def broker_config(out: Path, *extra: str, store: str = "s1", terminals: tuple[str, ...] = ("t1", "t2")) -> int:
    args = ["broker", "config", "--store", store, "--out", str(out), *extra]
    for terminal in terminals:
        args += ["--terminal", terminal]
    return cli_main(args)


def read_passwords(directory: Path) -> dict[str, str]:
    return {p.name.removesuffix(".password"): p.read_text().strip() for p in directory.glob("*.password")}


def two_stores(root: Path, auth: str) -> Generated:
    """Store s1 (terminals t1, t2, hub account 'hub') and store s2 (terminal t1, hub account 'hub-s2')."""
    port = free_port()
    merged = root / "etc"
    common = ["--port", str(port), "--bind", "127.0.0.1", "--install-dir", str(merged)]
    dynsec = ["--dynsec-file", str(merged / "dynamic-security.json"), "--dynsec-plugin", str(default_dynsec_plugin())]
    assert broker_config(merged, *common, *dynsec) == 0
    assert broker_config(root / "s2", *common, "--hub-account", "hub-s2", store="s2", terminals=("t1",)) == 0
    others = {k: v for k, v in read_passwords(root / "s2").items() if k != "dynsec-admin"}  # s1's admin serves both
    passwords = read_passwords(merged) | others
    for name in ("acl", "passwd"):
        text = (merged / name).read_text() + (root / "s2" / name).read_text()
        (merged / name).write_text(text)
    if auth == "dynsec":
        config = json.loads((merged / "dynamic-security.json").read_text())
        other = json.loads((root / "s2" / "dynamic-security.json").read_text())
        config["clients"] += [c for c in other["clients"] if c["username"] != "dynsec-admin"]
        config["roles"] += [r for r in other["roles"] if r["rolename"] != "store-agent-dynsec-admin"]
        (merged / "dynamic-security.json").write_text(json.dumps(config))
    conf_name = "mosquitto-dynsec.conf" if auth == "dynsec" else "mosquitto.conf"
    return Generated(port, merged, passwords, (merged / conf_name).read_text().splitlines())


def installed(workdir: Path, port: int, snippet: list[str]) -> Mosquitto:
    """mosquitto with the snippet in a ``conf.d`` directory that the main file includes, as Debian installs it."""
    conf_d = workdir / "conf.d"
    conf_d.mkdir(parents=True)
    (conf_d / "store-agent.conf").write_text("\n".join(snippet) + "\n")
    return Mosquitto(workdir, port=port, extra_conf=[f"include_dir {conf_d}"], listener=False).start()


def start(generated: Generated, workdir: Path) -> Mosquitto:
    return installed(workdir, generated.port, generated.conf)


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    need_mosquitto_tools()
    generated = two_stores(tmp_path_factory.mktemp("acl-broker"), "acl")
    server = start(generated, generated.directory.parent / "mosquitto")
    yield generated
    server.stop()


S1T1, S1T2, S2T1 = Topics("store", "s1", "t1"), Topics("store", "s1", "t2"), Topics("store", "s2", "t1")


# --- the generated files themselves ------------------------------------------------------------------


def test_acl_grants_follow_the_topic_layout() -> None:
    layout = StoreBroker("s1", ("t1", "t2"), hub_accounts=("hub", "hub-monitor"))
    t1 = layout.grants("s1-t1")
    assert set(t1.write) == {S1T1.status, S1T1.health, "store/s1/t1/events/#", "store/s1/t1/cmd/+/reply"}
    assert set(t1.read) == {S1T1.command_filter, S1T1.ack, "store/s1/_members/+"}
    hub = layout.grants("hub-monitor")
    assert set(hub.write) == {S1T1.command_filter, S1T1.ack, S1T2.command_filter, S1T2.ack, "store/s1/_members/+"}
    assert hub.read == ("store/s1/#",)
    text = acl_file(layout)
    assert text.count("\nuser ") == 4 and "pattern" not in text
    block = text.split("user s1-t2\n")[1]
    assert "topic read store/s1/t2/cmd/+\n" in block and "s1/t1" not in block


def test_dynsec_password_is_the_plugins_pbkdf2() -> None:
    # The plugin's own hashing, as `mosquitto_ctrl dynsec init` wrote it on this machine for password "s3cret".
    salt = "unNqKNXhcC6Hz9j9"
    made = dynsec_password("s3cret", base64.b64decode(salt))
    assert made == {
        "password": "xxeLNDYH4e6TPlJDs3GjJ5SSyZjHhjFwxuaFpJQCKRBeXjJ0eFoy8EPf2gnlwT6AjhE5q0vWqPw+JQP9ljs01w==",
        "salt": salt,
        "iterations": 101,
    }


def test_cli_writes_private_files_and_keeps_passwords(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need_mosquitto_tools()
    out = tmp_path / "out"
    assert broker_config(out) == 0
    printed = capsys.readouterr().out
    first = read_passwords(out)
    assert set(first) == {"hub", "s1-t1", "s1-t2", "dynsec-admin"}
    for account, password in first.items():
        assert len(password) >= 40 and password not in printed, f"{account}'s password leaked to stdout"
        assert stat.S_IMODE((out / f"{account}.password").stat().st_mode) == 0o600
    for name in ("passwd", "dynamic-security.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
        assert all(p not in (out / name).read_text() for p in first.values()), f"a plain password in {name}"
    assert [line.split(":")[0] for line in (out / "passwd").read_text().splitlines()] == ["hub", "s1-t1", "s1-t2"]
    assert "mqtt.username: s1-t1" in printed

    before = (out / "acl").read_text()
    assert broker_config(out, terminals=("t1", "t2", "t3")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out / "acl") in err and "--force" in err
    assert (out / "acl").read_text() == before, "nothing may be written when refusing"

    assert broker_config(out, "--force", "--rotate", "s1-t2", terminals=("t1", "t2", "t3")) == 0
    second = read_passwords(out)
    assert second["hub"] == first["hub"] and second["s1-t1"] == first["s1-t1"]
    assert second["s1-t2"] != first["s1-t2"] and "s1-t3" in second
    assert "user s1-t3" in (out / "acl").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--terminal", "T1"], "terminal id 'T1'"),
        (["--terminal", "t1/x"], "terminal id 't1/x'"),
        (["--hub-account", "s1-t1"], "account name used twice: s1-t1"),
        (["--rotate", "nobody"], "--rotate nobody"),
        (["--tls-ca", "/ca.pem"], "--tls-ca, --tls-cert and --tls-key go together"),
    ],
)
def test_cli_usage_errors_are_one_line(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert broker_config(tmp_path / "out", *extra, terminals=("t1",)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


# --- the ACL in a real mosquitto -------------------------------------------------------------------------


def test_anonymous_and_wrong_passwords_are_refused(acl_broker: Generated) -> None:
    assert acl_broker.probe(None).connect() in (NOT_AUTHORIZED, BAD_CREDENTIALS)
    assert acl_broker.probe("s1-t1", password="guess").connect() in (NOT_AUTHORIZED, BAD_CREDENTIALS)
    # s2's password for s1's terminal account: accounts are per store.
    assert acl_broker.probe("s1-t1", password=acl_broker.passwords["s2-t1"]).connect() in (
        NOT_AUTHORIZED,
        BAD_CREDENTIALS,
    )
    assert acl_broker.probe("dynsec-admin").connect() in (NOT_AUTHORIZED, BAD_CREDENTIALS), "not in password_file"


def test_terminal_publishes_only_its_own_topics(acl_broker: Generated) -> None:
    hub = acl_broker.connected("hub", "hub")
    hub_s2 = acl_broker.connected("hub-s2", "hub-s2")
    t1 = acl_broker.connected("s1-t1")
    try:
        assert hub.subscribe("store/#") == [1] and hub_s2.subscribe("#") == [1]
        own = [S1T1.status, S1T1.health, S1T1.event("scene.motion"), S1T1.reply("ping")]
        for topic in own:
            assert t1.publish(topic) in ACCEPTED, topic
        forged = [
            S1T2.status,
            S1T2.health,
            S1T2.event("card.tapped"),
            S1T2.reply("ping"),
            S1T1.ack,  # acknowledging (deleting) its own events is the hub's right
            S1T2.ack,
            f"{S1T1.base}/cmd/erase-member",  # commanding itself
            f"{S1T2.base}/cmd/erase-member",
            S2T1.event("card.tapped"),
            S2T1.status,
            f"{S1T1.base}/other",
            "store/s1",
            "elsewhere/topic",
        ]
        for topic in forged:
            assert t1.publish(topic, b'{"forged":true}') == NOT_AUTHORIZED, topic
        assert t1.publish(S1T2.status, b'{"state":"offline"}', retain=True) == NOT_AUTHORIZED
        fence(t1, hub, S1T1.event("fence"))
        assert sorted(hub.topics()) == sorted([*own, S1T1.event("fence")])
        assert not any(b"forged" in p for _, p, _ in hub.messages)
        assert hub_s2.topics() == [], "store s2's hub must see nothing of store s1"
    finally:
        for probe in (hub, hub_s2, t1):
            probe.close()


def test_terminal_receives_only_its_own_commands_and_acks(acl_broker: Generated) -> None:
    hub = acl_broker.connected("hub", "hub")
    hub_s2 = acl_broker.connected("hub-s2", "hub-s2")
    t1 = acl_broker.connected("s1-t1")
    t2 = acl_broker.connected("s1-t2")
    s2 = acl_broker.connected("s2-t1")
    try:
        assert t2.publish(S1T2.status, b'{"state":"online"}', retain=True) in ACCEPTED
        # With an acl_file, mosquitto 2.0 grants any SUBSCRIBE; delivery is where `read` is enforced.
        assert t1.subscribe("#", "store/#", S1T2.base + "/#", "store/s2/#", S1T1.command_filter, S1T1.ack) == [1] * 6
        assert t2.subscribe(S1T2.command_filter) == [1]
        assert hub.publish(f"{S1T1.base}/cmd/ping", b'{"request_id":"a"}') in ACCEPTED
        assert hub.publish(S1T1.ack, b'{"event_ids":["x"]}') in ACCEPTED
        assert hub.publish(f"{S1T2.base}/cmd/ping", b'{"request_id":"b"}') in ACCEPTED
        assert hub.publish(S1T2.ack, b'{"event_ids":["y"]}') in ACCEPTED
        assert hub_s2.publish(f"{S2T1.base}/cmd/ping") in ACCEPTED
        for topic in (S1T2.event("card.tapped"), S1T2.health):
            assert t2.publish(topic) in ACCEPTED
        assert s2.publish(S2T1.event("card.tapped")) in ACCEPTED
        t2.wait_for(f"{S1T2.base}/cmd/ping")
        fence(hub, t1, S1T1.ack)
        assert sorted(set(t1.topics())) == sorted([f"{S1T1.base}/cmd/ping", S1T1.ack])
        assert not any(retained for _, _, retained in t1.messages), "t2's retained status leaked to t1"
    finally:
        assert t2.publish(S1T2.status, b"", retain=True) in ACCEPTED
        for probe in (hub, hub_s2, t1, t2, s2):
            probe.close()


def test_client_id_is_bound_to_the_account(acl_broker: Generated) -> None:
    t2 = acl_broker.connected("s1-t2", "s1-t2")
    try:
        assert t2.subscribe(S1T2.command_filter) == [1]
        # t1 asks for t2's client id: the broker uses t1's account name instead, so t2's session survives.
        impostor = acl_broker.connected("s1-t1", "s1-t2")
        assert impostor.subscribe(S1T2.command_filter) == [1]  # granted, but nothing of t2's is delivered
        time.sleep(0.5)
        assert t2.disconnect_reason is None, "t1 took over t2's session"
        assert impostor.publish(S1T2.event("card.tapped")) == NOT_AUTHORIZED
        hub = acl_broker.connected("hub", "hub")
        assert hub.publish(f"{S1T2.base}/cmd/ping") in ACCEPTED
        t2.wait_for(f"{S1T2.base}/cmd/ping")
        assert impostor.topics() == [], "t1 received t2's command"
        # The same account twice: that is the one takeover the broker allows (a terminal reconnecting).
        again = acl_broker.connected("s1-t1", "anything")
        deadline = time.monotonic() + 5
        while impostor.disconnect_reason is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert impostor.disconnect_reason is not None, "a second login of the same account must replace the first"
        for probe in (again, hub, impostor):
            probe.close()
    finally:
        t2.close()


def test_hub_commands_acks_and_reads_its_store_only(acl_broker: Generated) -> None:
    hub = acl_broker.connected("hub", "hub")
    t1 = acl_broker.connected("s1-t1")
    try:
        assert hub.subscribe("store/s1/#", "store/s2/#") == [1, 1]
        assert t1.subscribe(S1T1.command_filter, S1T1.ack) == [1, 1]
        assert hub.publish(f"{S1T1.base}/cmd/enroll-member", b'{"request_id":"e"}') in ACCEPTED
        assert hub.publish(S1T1.ack, b'{"event_ids":["1"]}') in ACCEPTED
        for topic in (S1T1.event("card.tapped"), S1T1.status, S1T1.reply("ping"), f"{S2T1.base}/cmd/ping", S2T1.ack):
            assert hub.publish(topic) == NOT_AUTHORIZED, topic
        s2 = acl_broker.connected("s2-t1")
        assert s2.publish(S2T1.event("card.tapped")) in ACCEPTED
        assert t1.publish(S1T1.event("card.tapped")) in ACCEPTED
        hub.wait_for(S1T1.event("card.tapped"))
        assert not any(t.startswith("store/s2/") for t in hub.topics()), "the hub of s1 read store s2"
        s2.close()
        # The largest command (an 8 MiB enrolment) passes; beyond max_packet_size (10 MiB) the broker closes the
        # sender's connection and forwards nothing.
        big = b"x" * (8 * 1024 * 1024)
        assert hub.publish(f"{S1T1.base}/cmd/enroll-member", big, timeout=30) in ACCEPTED
        fence(hub, t1, S1T1.ack)
        assert [len(p) for t, p, _ in t1.messages if t.endswith("enroll-member")] == [18, len(big)]
        assert hub.publish(f"{S1T1.base}/cmd/enroll-member", b"x" * (11 * 1024 * 1024), timeout=30) not in ACCEPTED
        hub.close()
        time.sleep(1.0)
        assert [len(p) for t, p, _ in t1.messages if t.endswith("enroll-member")] == [18, len(big)]
    finally:
        hub.close()
        t1.close()


def test_the_agent_delivers_events_and_replies_under_the_acl(acl_broker: Generated, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        acl_broker.port,
        store={"id": "s1", "name": "Store 1"},
        terminal={"id": "t1"},
        mqtt={"host": "127.0.0.1", "port": acl_broker.port, "health_interval_s": 1, "username": "s1-t1",
              "password_env": "STORE_AGENT_MQTT_PASSWORD"},
        cameras=[{"name": "cam", "type": "test-pattern", "width": 640, "height": 480, "fps": 10, "walkers": 1,
                  "realtime": False}],
        pipelines={"motion": {"enabled": True}},
    )  # fmt: skip
    hub = acl_broker.connected("hub", "hub")
    agent = start_agent(config, {"STORE_AGENT_MQTT_PASSWORD": acl_broker.passwords["s1-t1"]})
    try:
        assert hub.subscribe(S1T1.base + "/#") == [1]
        online = json.loads(hub.wait_for(S1T1.status, timeout=60))
        assert online["state"] == "online", online
        motion = json.loads(hub.wait_for(S1T1.event("scene.motion"), timeout=60))
        validator("scene.motion").validate(motion)
        assert motion["store_id"] == "s1" and motion["terminal_id"] == "t1"
        validator("health").validate(json.loads(hub.wait_for(S1T1.health, timeout=30)))
        # The agent's subscriptions (cmd/+, ack) and its replies pass the ACL too: ping is an open command.
        assert hub.publish(f"{S1T1.base}/cmd/ping", b'{"request_id":"acl-1"}') in ACCEPTED
        reply = json.loads(hub.wait_for(S1T1.reply("ping"), timeout=30))
        assert reply["request_id"] == "acl-1" and reply["ok"] is True, reply
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        assert hub.wait_until(
            lambda msgs: any(t == S1T1.status and json.loads(p)["state"] == "offline" for t, p, _ in msgs), 15
        ), "no offline status after SIGTERM"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
        hub.close()
    log = (tmp_path / "agent.log").read_text(errors="replace")
    assert "Not authorized" not in log and acl_broker.passwords["s1-t1"] not in log


def test_adding_a_terminal_and_rotating_a_password_take_effect_on_reload(tmp_path: Path) -> None:
    """docs/broker-security.md: rerun with --force (and --rotate), then `systemctl reload mosquitto` (SIGHUP)."""
    need_mosquitto_tools()
    out, port = tmp_path / "etc", free_port()
    common = ["--port", str(port), "--bind", "127.0.0.1", "--install-dir", str(out)]
    assert broker_config(out, *common, terminals=("t1",)) == 0
    old = read_passwords(out)
    conf = (out / "mosquitto.conf").read_text().splitlines()
    server = installed(tmp_path / "mosquitto", port, conf)
    try:
        connected = Probe(port, "s1-t1", old["s1-t1"], "s1-t1")
        hub = Probe(port, "hub", old["hub"], "hub")
        assert connected.connect() == 0 and hub.connect() == 0
        assert broker_config(out, *common, "--force", "--rotate", "s1-t1", terminals=("t1", "t3")) == 0
        new = read_passwords(out)
        assert Probe(port, "s1-t3", new["s1-t3"]).connect() in (NOT_AUTHORIZED, BAD_CREDENTIALS), "before reload"
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        t3 = Probe(port, "s1-t3", new["s1-t3"], "s1-t3")
        while t3.connect() != 0:
            assert time.monotonic() < deadline, "the new terminal cannot log in after the reload"
            time.sleep(0.2)
            t3 = Probe(port, "s1-t3", new["s1-t3"], "s1-t3")
        assert t3.publish(Topics("store", "s1", "t3").status) in ACCEPTED
        assert t3.publish(S1T1.status) == NOT_AUTHORIZED
        t3.close()
        # mosquitto checks connected clients again at the reload: the rotated account's old session is closed,
        # the others stay.
        assert connected.disconnect_reason is not None, "still connected with the old password"
        assert hub.disconnect_reason is None, "the hub (password kept) was disconnected by the reload"
        assert Probe(port, "s1-t1", old["s1-t1"]).connect() in (NOT_AUTHORIZED, BAD_CREDENTIALS), "old password"
        fresh = Probe(port, "s1-t1", new["s1-t1"], "s1-t1")
        assert fresh.connect() == 0
        fresh.close()
        hub.close()
    finally:
        server.stop()


# --- the dynamic-security plugin ------------------------------------------------------------------


@pytest.fixture(scope="module")
def dynsec_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    need_mosquitto_tools()
    if not default_dynsec_plugin().is_file():
        require("mosquitto", f"its dynamic-security plugin is not installed ({default_dynsec_plugin()})")
    generated = two_stores(tmp_path_factory.mktemp("dynsec-broker"), "dynsec")
    server = start(generated, generated.directory.parent / "mosquitto")
    yield generated
    server.stop()


def test_dynamic_security_refuses_the_same(dynsec_broker: Generated) -> None:
    assert dynsec_broker.probe(None).connect() in (NOT_AUTHORIZED, BAD_CREDENTIALS)
    assert dynsec_broker.probe("s1-t1", password="guess").connect() in (NOT_AUTHORIZED, BAD_CREDENTIALS)
    hub = dynsec_broker.connected("hub", "hub")
    t1 = dynsec_broker.connected("s1-t1", "s1-t2")  # asks for t2's id: bound to its own
    t2 = dynsec_broker.connected("s1-t2", "s1-t2")
    try:
        assert hub.subscribe("store/s1/#", "store/s2/#", "#") == [1, NOT_AUTHORIZED, NOT_AUTHORIZED]
        # Unlike an acl_file, the plugin refuses a forbidden SUBSCRIBE outright.
        assert t1.subscribe(S1T1.command_filter, S1T1.ack, "#", S1T2.command_filter, "store/s2/#") == [
            1,
            1,
            NOT_AUTHORIZED,
            NOT_AUTHORIZED,
            NOT_AUTHORIZED,
        ]
        assert t2.subscribe(S1T2.command_filter) == [1]
        for topic in (S1T1.status, S1T1.event("scene.motion"), S1T1.reply("ping")):
            assert t1.publish(topic) in ACCEPTED, topic
        for topic in (S1T2.event("card.tapped"), S1T2.status, S1T1.ack, f"{S1T1.base}/cmd/ping", S2T1.status):
            assert t1.publish(topic) == NOT_AUTHORIZED, topic
        assert hub.publish(f"{S1T1.base}/cmd/ping") in ACCEPTED and hub.publish(S1T1.ack) in ACCEPTED
        assert hub.publish(f"{S1T2.base}/cmd/ping") in ACCEPTED
        for topic in (S1T1.event("card.tapped"), f"{S2T1.base}/cmd/ping"):
            assert hub.publish(topic) == NOT_AUTHORIZED, topic
        fence(hub, t1, S1T1.ack)
        t2.wait_for(f"{S1T2.base}/cmd/ping")
        assert t2.disconnect_reason is None, "t1 took over t2's session"
        assert set(t1.topics()) == {f"{S1T1.base}/cmd/ping", S1T1.ack}
        seen = set(hub.topics())
        assert {S1T1.status, S1T1.event("scene.motion"), S1T1.reply("ping")} <= seen
        assert not seen & {S1T2.event("card.tapped"), S1T2.status, S2T1.status}, seen
    finally:
        for probe in (hub, t1, t2):
            probe.close()


def test_dynamic_security_admin_manages_accounts_live(dynsec_broker: Generated) -> None:
    """The docs' "add a terminal" with mosquitto_ctrl: the admin account works, and only on $CONTROL."""
    ctrl = require_tool("mosquitto_ctrl", "apt install mosquitto-clients")
    admin = dynsec_broker.connected("dynsec-admin", "dynsec-admin")
    try:
        assert admin.publish(S1T1.event("card.tapped")) == NOT_AUTHORIZED
        assert admin.subscribe("store/#") == [NOT_AUTHORIZED]
    finally:
        admin.close()
    base = [ctrl, "-h", "127.0.0.1", "-p", str(dynsec_broker.port), "-u", "dynsec-admin"]
    base += ["-P", dynsec_broker.passwords["dynsec-admin"], "dynsec"]

    def ctrl_run(*args: str) -> str:
        done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, f"mosquitto_ctrl dynsec {' '.join(args)}: {done.stderr}{done.stdout}"
        return done.stdout

    assert {"hub", "s1-t1", "s1-t2", "s2-t1"} <= set(ctrl_run("listClients").split())
    # docs/broker-security.md, "Adding a terminal" with the dynamic-security plugin, on a running broker.
    account, role, hub_role, base_topic = "s1-t3", "store-agent-terminal-s1-t3", "store-agent-hub-s1", "store/s1/t3"
    password = "test-only-password-for-t3"
    ctrl_run("createClient", account, "-c", account, "-p", password)
    ctrl_run("createRole", role)
    for topic in ("status", "health", "events/#", "cmd/+/reply"):
        ctrl_run("addRoleACL", role, "publishClientSend", f"{base_topic}/{topic}", "allow")
    for topic in ("cmd/+", "ack"):
        ctrl_run("addRoleACL", role, "subscribePattern", f"{base_topic}/{topic}", "allow")
        ctrl_run("addRoleACL", role, "publishClientReceive", f"{base_topic}/{topic}", "allow")
        ctrl_run("addRoleACL", hub_role, "publishClientSend", f"{base_topic}/{topic}", "allow")
    ctrl_run("addClientRole", account, role)

    t3 = dynsec_broker.probe(account, "s1-t3", password)
    hub = dynsec_broker.connected("hub", "hub")
    try:
        assert t3.connect() == 0
        assert t3.subscribe(f"{base_topic}/cmd/+", S1T1.command_filter) == [1, NOT_AUTHORIZED]
        assert t3.publish(f"{base_topic}/events/card.tapped") in ACCEPTED
        assert t3.publish(S1T1.event("card.tapped")) == NOT_AUTHORIZED
        assert hub.publish(f"{base_topic}/cmd/ping") in ACCEPTED
        t3.wait_for(f"{base_topic}/cmd/ping")
    finally:
        t3.close()
        hub.close()


# --- one certificate per terminal -------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_mosquitto_tools()
    d = tmp_path_factory.mktemp("broker-pki")
    make_ca(d, "ca")
    make_cert(d, "server", "ca", "DNS:localhost")
    for account in ("s1-t1", "s1-t2", "hub"):
        make_cert(d, account, "ca", None)
    (d / "rogue").mkdir()
    make_ca(d / "rogue", "rogue-ca")
    make_cert(d / "rogue", "s1-t2", "rogue-ca", None)  # B's name, signed by someone else
    return d


def client_tls(pki: Path, cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(cert.with_suffix(".pem")), str(cert.with_suffix(".key")))
    return context


@pytest.fixture(scope="module")
def mtls_broker(pki: Path) -> Iterator[int]:
    out = pki / "broker"
    port = free_port()
    tls = ["--tls-ca", str(pki / "ca.pem"), "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
    assert broker_config(out, "--port", str(port), "--bind", "127.0.0.1", "--install-dir", str(out), *tls) == 0
    assert not (out / "passwd").exists() and not list(out.glob("*.password")), "no passwords with certificates"
    conf = (out / "mosquitto.conf").read_text()
    assert "password_file" not in conf and "use_identity_as_username true" in conf
    server = installed(pki / "mosquitto", port, conf.splitlines())
    yield port
    server.stop()


def test_mtls_certificate_is_the_account(mtls_broker: int, pki: Path) -> None:
    def probe(cert: Path, username: str | None = None, client_id: str = "probe") -> Probe:
        return Probe(mtls_broker, username, "ignored" if username else None, client_id, tls=client_tls(pki, cert),
                     host="localhost")  # fmt: skip

    hub = probe(pki / "hub")
    t2 = probe(pki / "s1-t2", client_id="s1-t2")
    # A's certificate, claiming B's user name and client id: the CN decides, so it is still A.
    t1 = probe(pki / "s1-t1", username="s1-t2", client_id="s1-t2")
    try:
        for p in (hub, t2, t1):
            assert p.connect() == 0
        assert hub.subscribe("store/s1/#") == [1] and t2.subscribe(S1T2.command_filter) == [1]
        assert t1.publish(S1T1.event("card.tapped")) in ACCEPTED
        for topic in (S1T2.event("card.tapped"), S1T2.status, f"{S1T2.base}/cmd/ping", S1T1.ack):
            assert t1.publish(topic) == NOT_AUTHORIZED, topic
        assert hub.publish(f"{S1T2.base}/cmd/ping") in ACCEPTED
        t2.wait_for(f"{S1T2.base}/cmd/ping")
        assert t2.disconnect_reason is None, "A's certificate took over B's session"
        fence(t1, hub, S1T1.event("fence"))
        assert set(hub.topics()) == {S1T1.event("card.tapped"), f"{S1T2.base}/cmd/ping", S1T1.event("fence")}
    finally:
        for p in (hub, t2, t1):
            p.close()
    # The agent's own client with mqtt.tls (docs/broker-security.md): A's certificate, B's topics refused.
    settings = MqttSection.model_validate(
        {"host": "localhost", "port": mtls_broker, "tls": {"ca_file": pki / "ca.pem", "cert_file": pki / "s1-t1.pem",
                                                          "key_file": pki / "s1-t1.key"}}
    )  # fmt: skip
    conn = MqttConnection(settings, "s1-t2")
    conn.start()
    try:
        assert conn.wait_connected(10), conn.last_error
        own, forged = conn.publish(S1T1.event("card.tapped"), b"{}"), conn.publish(S1T2.event("card.tapped"), b"{}")
        outcomes: dict[int | None, Published] = {}
        deadline = time.monotonic() + 10
        while len(outcomes) < 2 and time.monotonic() < deadline:
            item = conn.inbox.get(timeout=10)
            if isinstance(item, Published):
                outcomes[item.mid] = item
        assert outcomes[own].ok and not outcomes[forged].ok and outcomes[forged].reason == "Not authorized"
    finally:
        conn.stop()

    # B's name on a certificate from another CA: refused (with TLS 1.3 the client may only learn it after its
    # handshake, when the broker closes the connection instead of sending a CONNACK).
    rogue = Probe(mtls_broker, None, None, tls=client_tls(pki, pki / "rogue" / "s1-t2"), host="localhost")
    try:
        code = rogue.connect(5)
    except (ssl.SSLError, OSError):
        code = None
    finally:
        rogue.client.loop_stop()
    assert code != 0, "a certificate from another CA was accepted"
