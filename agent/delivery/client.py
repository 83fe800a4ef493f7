"""The one module that owns paho-mqtt (2.x API): connection, TLS, credentials, reconnect with backoff.

paho's callbacks run in the network thread, some of them while paho holds its
outgoing-message lock, so they only put a small record on ``inbox`` (a
``SimpleQueue``). An owner either reads ``inbox`` in its own thread (the
monitor) or passes a ``service`` function that the network thread calls after
every read (the publisher): then PUBACKs are handled and the next events
published in the thread that owns the socket, with no thread switch, lock
hand-off or wake-up byte per message. The network loop is ours rather than
``loop_start``'s so reconnects use capped, jittered backoff and the reason a
connection failed (a TLS verification error, a refused CONNACK) reaches the
operator verbatim. Other threads that publish (health, replies) append to
paho's queue and wake the loop through our own socket pair.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.backoff import Backoff
from agent.config.schema import MqttSection
from agent.errors import AgentError
from drivers.secrets import SecretError, read_secret

logger = logging.getLogger(__name__)

#: Session kept by the broker for a persistent subscriber (MQTT 5 needs it set explicitly).
PERSISTENT_SESSION_S = 7 * 24 * 3600
#: MQTT 5 Maximum Packet Size we accept: the largest command (an 8 MiB enrolment) plus room. The broker drops
#: anything larger instead of sending it (a 100 MB publish never reaches the terminal's memory).
MAX_PACKET_BYTES = 10 * 1024 * 1024
#: MQTT 5 reason code of a disconnect because another client connected with the same client id.
SESSION_TAKEN_OVER = 142


class DeliveryError(AgentError):
    """MQTT settings cannot be used (missing password, unreadable TLS files): a message for the operator."""


@dataclass(frozen=True, slots=True)
class Connected:
    session_present: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


@dataclass(frozen=True, slots=True)
class Published:
    """A PUBACK: ``ok`` unless the broker refused (reason >= 0x80); ``code`` is the MQTT 5 reason code (0 over
    MQTT 3.1.1), so an owner can tell 0x10 "No matching subscribers" (a success code nobody received) apart."""

    mid: int
    ok: bool
    reason: str
    code: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retained: bool = False


Incoming = Connected | Disconnected | Published | Message


def read_password(settings: MqttSection) -> str | None:
    """The broker password from the environment or a systemd credential; never from the YAML."""
    where = "mqtt.password_env" if settings.password_env else "mqtt.password_credential"
    try:
        return read_secret(settings.password_env, settings.password_credential)
    except SecretError as exc:
        raise DeliveryError(f"{where}: {exc}") from None


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails: paho drops the half-made socket without closing it."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def tls_context(settings: MqttSection) -> ssl.SSLContext | None:
    """TLS >= 1.2, the configured CA only, host name checked, optional client certificate."""
    tls = settings.tls
    if tls is None:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise DeliveryError(f"mqtt.tls.ca_file: cannot load CA certificate {tls.ca_file}: {exc}") from None
    context.sslsocket_class = _ClosingSSLSocket
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


class _LastError(logging.Handler):
    """Keeps paho's last ERROR line (why a connection failed) for the operator."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.text: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.text = record.getMessage()


def _paho_logger(handler: logging.Handler) -> logging.Logger:
    """A private ERROR-level logger for paho: unlike ``on_log``, paho does not format its per-packet debug lines
    for it (``Logger.log`` returns at once below its level), which costs a string format per message."""
    # A private instance, not in the logging tree: one per connection, nothing left behind when it goes.
    paho_log = logging.Logger(f"{__name__}.paho", logging.ERROR)  # noqa: LOG001
    paho_log.addHandler(handler)
    paho_log.propagate = False
    return paho_log


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
        service: Callable[[], None] | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.inbox: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self.connected = False
        self.connects = 0
        self.takeovers = 0
        self.last_error: str | None = None
        self._paho_errors = _LastError()
        self._refused: str | None = None
        self._backoff = backoff or Backoff(initial_s=0.5, cap_s=30.0)
        self._stop = threading.Event()
        self._service = service
        self._poll_s = poll_s
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
        self._client.enable_logger(_paho_logger(self._paho_errors))
        # Only our network thread writes to the socket; publish() from another thread wakes it.
        self._client.on_socket_register_write = self._on_register_write
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = PERSISTENT_SESSION_S if persistent_session else 0
            properties.MaximumPacketSize = MAX_PACKET_BYTES
            self._client.connect_async(
                settings.host,
                settings.port,
                settings.keepalive_s,
                clean_start=not persistent_session,
                properties=properties,
            )
        else:
            self._client.connect_async(settings.host, settings.port, settings.keepalive_s)
        # Created last, so that a settings error above leaves nothing open.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{client_id}", daemon=True)

    # --- paho callbacks: record and hand over, nothing else --------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused = f"broker refused the connection: {reason}"
            return
        sock = client.socket()
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one small PUBLISH must not wait for an ACK
        self.connected = True
        self.connects += 1
        self.last_error = None
        self.inbox.put(Connected(bool(flags.session_present)))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was = self.connected
        self.connected = False
        if getattr(reason, "value", None) == SESSION_TAKEN_OVER:
            self.takeovers += 1
            self._refused = (
                f"another client connected with this client id ({self.client_id}): the broker must bind client ids "
                "to accounts (docs/broker-security.md)"
            )
        if was:
            self.inbox.put(Disconnected(str(reason)))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        code = int(getattr(reason, "value", 0))
        self.inbox.put(Published(mid, not reason.is_failure, str(reason) if code else "", code))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.inbox.put(Message(message.topic, bytes(message.payload), bool(message.retain)))

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
            self._paho_errors.text = None
            self._refused = None
            try:
                self._client.reconnect()
            except (OSError, ValueError) as exc:
                self._fail(describe_error(exc))
                self._stop.wait(self._backoff.next_delay())
                continue
            rc = MQTTErrorCode.MQTT_ERR_SUCCESS
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stop.is_set():
                rc = self._step(self._poll_s)
                if self.connected:
                    self._backoff.reset()
            if self._stop.is_set():
                self._drain_on_stop()
                break
            detail = self._refused or self._paho_errors.text or f"connection lost ({getattr(rc, 'name', rc)})"
            self._fail(self._explain(detail))
            if self.connected:  # paho did not call on_disconnect (socket closed under select)
                self.connected = False
                self.inbox.put(Disconnected(detail))
            self._stop.wait(self._backoff.next_delay())

    def _step(self, timeout: float) -> MQTTErrorCode:
        """One turn of the network loop: read, let the owner act, write, keepalive (paho's ``_loop``, plus us)."""
        client = self._client
        sock = client.socket()
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        wlist = [sock] if client.want_write() else []
        try:
            readable, _, _ = select.select([sock, self._wake_r], wlist, [], 0.0 if pending else timeout)
        except (OSError, ValueError, TypeError):
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if sock in readable or pending:
            rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
            if client.socket() is None:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if self._wake_r in readable:
            self._drain_wake()
        if self._service is not None:
            try:
                self._service()
            except Exception:
                # The thread ends: alive() turns false, the watchdog stops and systemd restarts the agent.
                logger.exception("MQTT %s: handling the connection's traffic failed", self.client_id)
                raise
        if client.want_write():
            rc = client.loop_write()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
        return client.loop_misc()

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def wake(self) -> None:
        """Make the network thread run a turn now (new work for ``service``, or a publish from another thread)."""
        with contextlib.suppress(BlockingIOError, OSError):  # already full of wake-ups, or closed at shutdown
            self._wake_w.send(b"\0")

    def _explain(self, detail: str) -> str:
        if "certificate required" in detail or "CERTIFICATE_REQUIRED" in detail:
            return f"TLS: the broker requires a client certificate (set mqtt.tls.cert_file and key_file): {detail}"
        if "certificate" in detail.lower() and self.settings.tls is not None:
            return f"TLS: the broker rejected our client certificate: {detail}"
        return detail

    def _drain_on_stop(self) -> None:
        """Send what is queued (the offline status), then disconnect cleanly (no last will)."""
        deadline = time.monotonic() + 2.0
        self._service = None
        while self._client.want_write() and time.monotonic() < deadline:
            if self._step(0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
        self._client.disconnect()
        for _ in range(5):
            if self._step(0.1) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.connected = False
        if not self._thread.is_alive():
            self._wake_r.close()
            self._wake_w.close()

    # --- for the owner --------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Queue a publish; the message id for QoS 1, ``None`` when not connected (nothing queued)."""
        if not self.connected:
            return None
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        if threading.get_ident() != self._thread.ident:
            self.wake()
        return int(info.mid)

    def subscribe(self, topics: list[str], qos: int = 1) -> None:
        """Subscribe; over MQTT 5 with Retain As Published, so a retained message shows its flag even when it is
        delivered live (a terminal refuses retained commands; MQTT 3.1.1 shows the flag only on subscription)."""
        if topics and self.connected:
            if self.settings.protocol == "5":
                options = SubscribeOptions(qos=qos, retainAsPublished=True)
                self._client.subscribe([(t, options) for t in topics])
            else:
                self._client.subscribe([(t, qos) for t in topics])
            if threading.get_ident() != self._thread.ident:
                self.wake()

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.connected
