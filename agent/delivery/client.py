"""The one module that owns paho-mqtt (2.x API): connection, TLS, credentials, reconnect with backoff.

paho's callbacks run in its network thread, some of them while paho holds its
outgoing-message lock, so they only put a small record on ``inbox`` (a
``SimpleQueue``, which takes no lock a publisher could hold) and the owner of
the connection acts on it in its own thread. The network loop is ours rather
than ``loop_start``'s so reconnects use capped, jittered backoff and the
reason a connection failed (a TLS verification error, a refused CONNACK)
reaches the operator verbatim.
"""

from __future__ import annotations

import logging
import os
import queue
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.config.schema import MqttSection
from agent.runtime.source import Backoff

logger = logging.getLogger(__name__)

#: Session kept by the broker for a persistent subscriber (MQTT 5 needs it set explicitly).
PERSISTENT_SESSION_S = 7 * 24 * 3600


class DeliveryError(Exception):
    """MQTT settings cannot be used (missing password, unreadable TLS files): a message for the operator."""


@dataclass(frozen=True, slots=True)
class Connected:
    session_present: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


@dataclass(frozen=True, slots=True)
class Published:
    mid: int
    ok: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Wake:
    """Nothing from the network: the owner should look at its work (e.g. new rows in the outbox)."""


Incoming = Connected | Disconnected | Published | Message | Wake


def read_password(settings: MqttSection) -> str | None:
    """The broker password from the environment or a systemd credential; never from the YAML."""
    if settings.password_env:
        value = os.environ.get(settings.password_env)
        if value is None:
            raise DeliveryError(f"mqtt.password_env: environment variable {settings.password_env} is not set")
        return value
    if settings.password_credential:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise DeliveryError(
                f"mqtt.password_credential: {settings.password_credential!r} needs systemd's LoadCredential= "
                "(CREDENTIALS_DIRECTORY is not set)"
            )
        path = Path(directory) / settings.password_credential
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise DeliveryError(f"mqtt.password_credential: cannot read {path}: {exc.strerror}") from None
    return None


def tls_context(settings: MqttSection) -> ssl.SSLContext | None:
    """TLS >= 1.2, the configured CA only, host name checked, optional client certificate."""
    tls = settings.tls
    if tls is None:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise DeliveryError(f"mqtt.tls.ca_file: cannot load CA certificate {tls.ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file is not None and tls.key_file is not None:
        try:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (ssl.SSLError, OSError) as exc:
            raise DeliveryError(
                f"mqtt.tls.cert_file/key_file: cannot load client certificate {tls.cert_file} with key "
                f"{tls.key_file}: {exc}"
            ) from None
    return context


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS: broker certificate rejected (certificate verify failed: {exc.verify_message}); "
            "check mqtt.tls.ca_file and mqtt.host"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running on that host and port?)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


class MqttConnection:
    """A paho client kept connected by our own network thread; events for the owner arrive on ``inbox``."""

    def __init__(
        self,
        settings: MqttSection,
        client_id: str,
        *,
        persistent_session: bool = False,
        will: tuple[str, bytes] | None = None,
        inflight: int = 100,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.persistent = persistent_session
        self.inbox: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self.connected = False
        self.connects = 0
        self.last_error: str | None = None
        self._last_log_error: str | None = None
        self._refused: str | None = None
        self._backoff = backoff or Backoff(initial_s=0.5, cap_s=30.0)
        self._stop = threading.Event()
        v5 = settings.protocol == "5"
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else not persistent_session,
        )
        self._client.max_inflight_messages_set(inflight)
        password = read_password(settings)
        if settings.username or password:
            self._client.username_pw_set(settings.username, password)
        context = tls_context(settings)
        if context is not None:
            self._client.tls_set_context(context)
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_log = self._on_log
        # Only our network thread writes to the socket; publish() from another thread wakes it.
        self._client.on_socket_register_write = self._on_register_write
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = PERSISTENT_SESSION_S if persistent_session else 0
            self._client.connect_async(
                settings.host,
                settings.port,
                settings.keepalive_s,
                clean_start=not persistent_session,
                properties=properties,
            )
        else:
            self._client.connect_async(settings.host, settings.port, settings.keepalive_s)
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{client_id}", daemon=True)

    # --- paho callbacks: record and hand over, nothing else --------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused = f"broker refused the connection: {reason}"
            return
        self.connected = True
        self.connects += 1
        self.last_error = None
        self.inbox.put(Connected(bool(flags.session_present)))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was = self.connected
        self.connected = False
        if was:
            self.inbox.put(Disconnected(str(reason)))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self.inbox.put(Published(mid, not reason.is_failure, str(reason)))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.inbox.put(Message(message.topic, bytes(message.payload)))

    def _on_log(self, client: Any, userdata: Any, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            self._last_log_error = text

    def _on_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        return None

    # --- the network thread -------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _fail(self, message: str) -> None:
        if message != self.last_error:
            logger.warning("MQTT %s:%d: %s", self.settings.host, self.settings.port, message)
        self.last_error = message

    def _run(self) -> None:
        while not self._stop.is_set():
            self._last_log_error = None
            self._refused = None
            try:
                self._client.reconnect()
            except (OSError, ValueError) as exc:
                self._fail(describe_error(exc))
                self._stop.wait(self._backoff.next_delay())
                continue
            rc = MQTTErrorCode.MQTT_ERR_SUCCESS
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stop.is_set():
                rc = self._client.loop(0.5)
                if self.connected:
                    self._backoff.reset()
            if self._stop.is_set():
                self._drain_on_stop()
                break
            detail = self._refused or self._last_log_error or f"connection lost ({getattr(rc, 'name', rc)})"
            self._fail(self._explain(detail))
            if self.connected:  # paho did not call on_disconnect (socket closed under select)
                self.connected = False
                self.inbox.put(Disconnected(detail))
            self._stop.wait(self._backoff.next_delay())

    def _explain(self, detail: str) -> str:
        if "certificate required" in detail or "CERTIFICATE_REQUIRED" in detail:
            return f"TLS: the broker requires a client certificate (set mqtt.tls.cert_file and key_file): {detail}"
        if "certificate" in detail.lower() and self.settings.tls is not None:
            return f"TLS: the broker rejected our client certificate: {detail}"
        return detail

    def _drain_on_stop(self) -> None:
        """Send what is queued (the offline status), then disconnect cleanly (no last will)."""
        deadline = time.monotonic() + 2.0
        while self._client.want_write() and time.monotonic() < deadline:
            if self._client.loop(0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
        self._client.disconnect()
        for _ in range(5):
            if self._client.loop(0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.connected = False

    # --- for the owner --------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Queue a publish; the message id for QoS 1, ``None`` when not connected (nothing queued)."""
        if not self.connected:
            return None
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return int(info.mid)

    def subscribe(self, topics: list[str], qos: int = 1) -> None:
        if topics and self.connected:
            self._client.subscribe([(t, qos) for t in topics])

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.connected
