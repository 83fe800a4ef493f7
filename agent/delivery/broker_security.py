"""The broker's share of the trust boundary: who may publish and read which topic, as mosquitto files.

Anyone on the store network can reach the broker. Without accounts and an ACL, any laptop there could publish
a terminal's events, read every terminal's traffic, send commands or acknowledge (and so delete) events. The
hub's signatures on commands and acks (docs/mqtt.md) are the first wall; this module builds the second, in the
broker itself: every client logs in with an account, and each account may only use its own topics.

- a terminal (account ``<store_id>-<terminal_id>``, the agent's default client id) writes its own ``status``,
  ``health``, ``events/#`` and ``cmd/+/reply``, and reads its own ``cmd/+`` and ``ack`` and the store's member
  states (``_members/+``, signed by the hub);
- the hub (account ``hub`` by default; one account per concurrent hub connection) reads everything of its store
  and writes ``cmd/+`` and ``ack`` for its terminals and the store's member states, nothing else.

The client id is bound to the account (``use_username_as_clientid``, or the certificate's CN with
``use_identity_as_username``), so one account cannot take over another's session. The same grants are written
three ways: an ``acl_file`` with a ``password_file``, a dynamic-security plugin JSON, and a certificate (mTLS)
listener where the account is the certificate's CN. Generation is pure except for the password file, which
``mosquitto_passwd`` hashes (``-U`` on a private temporary file: passwords never appear on a command line).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sysconfig
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent.config.schema import ID_PATTERN
from agent.delivery.topics import Topics

#: The largest MQTT packet the broker accepts (and sends): the largest command is an 8 MiB enrolment, the rest is
#: margin. ``max_packet_size`` rather than ``message_size_limit``, which mosquitto 2.0 says to replace with it; a
#: client that sends a larger packet is disconnected, and MQTT 5 clients are told the limit in the CONNACK.
MAX_PACKET_SIZE = 10 * 1024 * 1024
#: Outgoing QoS 1 messages in flight per client: the agent's publisher keeps 100 in flight the other way.
MAX_INFLIGHT_MESSAGES = 100
#: Messages queued per client beyond those in flight. The hub's persistent session holds every terminal's events
#: while the hub is away (in ``ack: broker`` mode they are the only copy), so this is far above mosquitto's 1000.
MAX_QUEUED_MESSAGES = 100_000
#: ... and at most this many bytes of them, so a hub away for days cannot exhaust a small broker's memory.
MAX_QUEUED_BYTES = 256 * 1024 * 1024
#: mosquitto's own PBKDF2-SHA512 parameters (``mosquitto_passwd`` and the dynamic-security plugin).
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12

DEFAULT_HUB_ACCOUNT = "hub"
DEFAULT_DYNSEC_ADMIN = "dynsec-admin"
DEFAULT_INSTALL_DIR = Path("/etc/mosquitto/store-agent")
DEFAULT_DYNSEC_FILE = Path("/var/lib/mosquitto/dynamic-security.json")

#: Account names: what ``ID_PATTERN`` allows for ids, plus the ``-`` joining store and terminal. Nothing that the
#: password file (``:``), the ACL file (spaces) or topic filters (``+ # /``) would read differently.
ACCOUNT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,128}$"
_PREFIX_PATTERN = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"


class BrokerSecurityError(ValueError):
    """The layout or a tool it needs is unusable; the message is for the operator (never contains a password)."""


class ToolMissing(BrokerSecurityError):
    """A mosquitto tool that generation needs is not installed."""


def default_dynsec_plugin() -> Path:
    """Debian's path of the dynamic-security plugin for this machine's architecture (multiarch directory)."""
    found = sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so"))
    if found:
        return found[0]
    multiarch = sysconfig.get_config_var("MULTIARCH") or "aarch64-linux-gnu"
    return Path("/usr/lib") / str(multiarch) / "mosquitto_dynamic_security.so"


@dataclass(frozen=True)
class Grants:
    """Topic filters an account may publish to (``write``) and subscribe to / receive from (``read``)."""

    write: tuple[str, ...]
    read: tuple[str, ...]


@dataclass(frozen=True)
class StoreBroker:
    """The accounts of one store's broker: its terminals and its hub account(s)."""

    store_id: str
    terminals: tuple[str, ...]
    prefix: str = "store"
    hub_accounts: tuple[str, ...] = (DEFAULT_HUB_ACCOUNT,)

    def __post_init__(self) -> None:
        if not re.fullmatch(ID_PATTERN, self.store_id):
            raise BrokerSecurityError(f"store id {self.store_id!r} is not a valid id ({ID_PATTERN})")
        if not self.terminals:
            raise BrokerSecurityError("give at least one terminal")
        for terminal in self.terminals:
            if not re.fullmatch(ID_PATTERN, terminal):
                raise BrokerSecurityError(f"terminal id {terminal!r} is not a valid id ({ID_PATTERN})")
        if len(set(self.terminals)) != len(self.terminals):
            raise BrokerSecurityError("a terminal is listed twice")
        if not re.fullmatch(_PREFIX_PATTERN, self.prefix):
            raise BrokerSecurityError(f"topic prefix {self.prefix!r} is not valid ({_PREFIX_PATTERN})")
        if not self.hub_accounts:
            raise BrokerSecurityError("give at least one hub account")
        for name in self.hub_accounts:
            check_account_name(name, "hub account")
        names = self.accounts
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise BrokerSecurityError(f"account name used twice: {', '.join(clash)}")

    def terminal_account(self, terminal_id: str) -> str:
        """The terminal's account: the agent's default client id ``<store_id>-<terminal_id>``."""
        return f"{self.store_id}-{terminal_id}"

    @property
    def terminal_accounts(self) -> dict[str, str]:
        """Account name to terminal id."""
        return {self.terminal_account(t): t for t in self.terminals}

    @property
    def accounts(self) -> list[str]:
        """Every account: the hub account(s), then one per terminal."""
        return [*self.hub_accounts, *(self.terminal_account(t) for t in self.terminals)]

    def topics(self, terminal_id: str) -> Topics:
        return Topics(self.prefix, self.store_id, terminal_id)

    def grants(self, account: str) -> Grants:
        if account in self.hub_accounts:
            write: list[str] = [self.members_filter]  # the fleet coordinator's retained member states
            for terminal_id in self.terminals:
                each = self.topics(terminal_id)
                write += [each.command_filter, each.ack]
            # Every terminal's status, health, events and replies, retained ones included.
            return Grants(tuple(write), (f"{self.prefix}/{self.store_id}/#",))
        terminal = self.terminal_accounts.get(account)
        if terminal is None:
            raise BrokerSecurityError(f"no account {account!r} on this broker")
        topics = self.topics(terminal)
        return Grants(
            write=(topics.status, topics.health, topics.event("#"), topics.reply("+")),
            read=(topics.command_filter, topics.ack, self.members_filter),
        )

    @property
    def members_filter(self) -> str:
        """The store's member states (identity.sync): every terminal of the store reads them."""
        return f"{self.prefix}/{self.store_id}/_members/+"


def check_account_name(name: str, what: str = "account") -> str:
    if not re.fullmatch(ACCOUNT_PATTERN, name):
        raise BrokerSecurityError(f"{what} {name!r} is not a valid account name ({ACCOUNT_PATTERN})")
    return name


def _role_comment(layout: StoreBroker, account: str) -> str:
    if account in layout.hub_accounts:
        return f"hub: reads all of store {layout.store_id}, sends commands and acks to its terminals"
    return f"terminal {layout.terminal_accounts[account]}: its own status, health, events and replies"


# --- (a) acl_file --------------------------------------------------------------------------------


def acl_file(layout: StoreBroker) -> str:
    """A mosquitto ``acl_file``: one ``user`` block per account, nothing for anonymous clients.

    With an ``acl_file``, mosquitto 2.0 grants any SUBSCRIBE and applies ``read`` when it delivers: a terminal
    that subscribes to ``#`` receives only its own commands and acks. Publishing elsewhere is refused
    (MQTT 5: PUBACK "Not authorized"; MQTT 3.1.1: acknowledged and dropped).
    """
    lines = [
        f"# mosquitto acl_file for store {layout.store_id} (topic prefix {layout.prefix}), generated by",
        "# `store-agent broker config`. Each account may only publish and read its own topics;",
        "# anything not listed is denied. See docs/broker-security.md.",
    ]
    for account in layout.accounts:
        grants = layout.grants(account)
        lines += ["", f"# {_role_comment(layout, account)}", f"user {account}"]
        lines += [f"topic write {t}" for t in grants.write]
        lines += [f"topic read {t}" for t in grants.read]
    return "\n".join(lines) + "\n"


# --- (b) passwords ---------------------------------------------------------------------------------


def new_password() -> str:
    """256 random bits, URL-safe base64 (no ``:`` or line end, which the password file would misread)."""
    return secrets.token_urlsafe(32)


def mosquitto_passwd_binary() -> str | None:
    return shutil.which("mosquitto_passwd") or next(
        (p for p in ("/usr/bin/mosquitto_passwd", "/usr/local/bin/mosquitto_passwd") if os.access(p, os.X_OK)), None
    )


def hashed_password_file(passwords: Mapping[str, str], tool: str | None = None) -> str:
    """A mosquitto ``password_file`` (PBKDF2-SHA512 hashes) for ``passwords``, made by ``mosquitto_passwd -U``.

    The plain text goes to a 0600 file in a private temporary directory that ``-U`` hashes in place, so no
    password is ever an argument another user could see in ``ps``; the directory is removed before returning.
    """
    binary = tool or mosquitto_passwd_binary()
    if binary is None:
        raise ToolMissing("mosquitto_passwd not found (apt install mosquitto); it hashes the password file")
    for name, password in passwords.items():
        check_account_name(name)
        if not password or any(c in password for c in ":\r\n"):
            raise BrokerSecurityError(f"the password of {name!r} is empty or contains ':' or a line end")
    with tempfile.TemporaryDirectory(prefix="store-agent-passwd-") as directory:
        path = Path(directory) / "passwd"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as plain:
            plain.writelines(f"{name}:{password}\n" for name, password in passwords.items())
        done = subprocess.run([binary, "-U", str(path)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise BrokerSecurityError(f"mosquitto_passwd -U failed: {detail[-1] if detail else done.returncode}")
        hashed = path.read_text(encoding="utf-8")
    for line in hashed.splitlines():
        if not line.partition(":")[2].startswith("$"):
            raise BrokerSecurityError("mosquitto_passwd -U left a password unhashed")
    return hashed


# --- (c) dynamic security --------------------------------------------------------------------------


def dynsec_password(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> dict[str, Any]:
    """The ``password``/``salt``/``iterations`` members of a dynamic-security client (the plugin's PBKDF2)."""
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return {
        "password": base64.b64encode(digest).decode("ascii"),
        "salt": base64.b64encode(salt).decode("ascii"),
        "iterations": iterations,
    }


def role_name(layout: StoreBroker, account: str) -> str:
    if account in layout.hub_accounts:
        return f"store-agent-hub-{layout.store_id}"
    return f"store-agent-terminal-{account}"


def _acls(grants: Grants) -> list[dict[str, Any]]:
    acls = [{"acltype": "publishClientSend", "topic": t, "priority": 0, "allow": True} for t in grants.write]
    for topic in grants.read:
        acls += [
            {"acltype": "subscribePattern", "topic": topic, "priority": 0, "allow": True},
            {"acltype": "publishClientReceive", "topic": topic, "priority": 0, "allow": True},
        ]
    return acls


def dynamic_security(
    layout: StoreBroker,
    passwords: Mapping[str, str] | None,
    *,
    admin: str | None = DEFAULT_DYNSEC_ADMIN,
) -> dict[str, Any]:
    """The dynamic-security plugin's JSON with the same grants as :func:`acl_file`.

    Everything not granted is denied, receiving included (``defaultACLAccess``), and unlike an ``acl_file`` the
    plugin refuses a forbidden SUBSCRIBE in the SUBACK. Each client is also bound to its client id (the plugin's
    ``clientid``). ``passwords`` is ``None`` on a certificate listener (the CN is the account, no password). The
    ``admin`` account may only use ``$CONTROL/dynamic-security/#``: it is what ``mosquitto_ctrl dynsec`` logs in
    with to add a terminal or change a password on a running broker.
    """
    roles: dict[str, dict[str, Any]] = {}
    clients: list[dict[str, Any]] = []
    for account in layout.accounts:
        role = role_name(layout, account)
        if role not in roles:
            comment = _role_comment(layout, account)
            roles[role] = {"rolename": role, "textname": comment, "acls": _acls(layout.grants(account))}
        client: dict[str, Any] = {"username": account, "clientid": account, "textname": _role_comment(layout, account)}
        if passwords is not None:
            client |= dynsec_password(passwords[account])
        client["roles"] = [{"rolename": role, "priority": 0}]
        clients.append(client)
    if admin is not None:
        check_account_name(admin, "dynamic-security admin account")
        if admin in layout.accounts:
            raise BrokerSecurityError(f"account name used twice: {admin}")
        control = "$CONTROL/dynamic-security/#"
        roles["store-agent-dynsec-admin"] = {
            "rolename": "store-agent-dynsec-admin",
            "textname": "manages the dynamic-security plugin, nothing else",
            "acls": _acls(Grants((control,), (control,))),
        }
        client = {"username": admin, "textname": "mosquitto_ctrl dynsec"}
        if passwords is not None:
            client |= dynsec_password(passwords[admin])
        client["roles"] = [{"rolename": "store-agent-dynsec-admin", "priority": 0}]
        clients.append(client)
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": list(roles.values()),
    }


def dynamic_security_json(
    layout: StoreBroker, passwords: Mapping[str, str] | None, *, admin: str | None = DEFAULT_DYNSEC_ADMIN
) -> str:
    return json.dumps(dynamic_security(layout, passwords, admin=admin), indent=2) + "\n"


# --- (d) mosquitto.conf ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenerTls:
    """The broker's side of an mTLS listener: the CA that signs every client certificate, the server's pair."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class BrokerConf:
    """Where the listener is and where the generated files will be on the broker."""

    port: int = 1883
    bind: str | None = None
    tls: ListenerTls | None = None
    install_dir: Path = DEFAULT_INSTALL_DIR
    dynsec_file: Path = DEFAULT_DYNSEC_FILE
    dynsec_plugin: Path = field(default_factory=default_dynsec_plugin)


def mosquitto_conf(layout: StoreBroker, conf: BrokerConf, auth: Literal["acl", "dynsec"] = "acl") -> str:
    """A ``conf.d`` snippet: one listener, no anonymous clients, the client id bound to the account.

    ``auth="acl"`` uses the ``acl_file`` (and, without TLS, the ``password_file``); ``auth="dynsec"`` loads the
    dynamic-security plugin instead. With ``conf.tls`` the listener requires a client certificate signed by the
    CA and its CN is the account (``use_identity_as_username``): no password is asked.
    """
    what = "dynamic-security plugin" if auth == "dynsec" else "acl_file"
    login = "client certificates" if conf.tls else ("passwords" if auth == "dynsec" else "password_file")
    lines = [
        f"# mosquitto settings for store {layout.store_id}, generated by `store-agent broker config`",
        f"# ({what}, {login}). Install: docs/broker-security.md.",
        "",
        "# Every client logs in; each account may only use its own topics.",
        "allow_anonymous false",
    ]
    if auth == "acl":
        if conf.tls is None:
            lines.append(f"password_file {conf.install_dir / 'passwd'}")
        lines.append(f"acl_file {conf.install_dir / 'acl'}")
    else:
        lines += [f"plugin {conf.dynsec_plugin}", f"plugin_opt_config_file {conf.dynsec_file}"]
    lines += [
        "",
        "# The largest message is an 8 MiB enrolment command; a client sending a larger packet is disconnected.",
        f"max_packet_size {MAX_PACKET_SIZE}",
        "# In-flight QoS 1 messages per client, and how much the broker queues for a client that is away",
        "# (the hub's session holds every terminal's events while the hub is down).",
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
            "# Only clients with a certificate signed by cafile; the certificate's CN is the account.",
            "require_certificate true",
            "use_identity_as_username true",
        ]
    lines += [
        "# The client id is the account name: no client can take over another account's session.",
        "use_username_as_clientid true",
    ]
    return "\n".join(lines) + "\n"


def terminal_hints(layout: StoreBroker, tls: bool) -> list[str]:
    """What each terminal's store YAML needs to log in (one line per terminal, no secret in it)."""
    hints = []
    for account, terminal in layout.terminal_accounts.items():
        if tls:
            hints.append(f"terminal {terminal}: a client certificate with CN={account} in mqtt.tls.cert_file/key_file")
        else:
            hints.append(
                f"terminal {terminal}: mqtt.username: {account}, password in {account}.password "
                "(install as /etc/store-agent/mqtt-password, mqtt.password_credential: mqtt-password)"
            )
    return hints
