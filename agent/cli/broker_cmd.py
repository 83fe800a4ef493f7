"""``store-agent broker config``: a store broker's accounts, ACL and mosquitto settings (docs/broker-security.md).

Writes into ``--out``: ``acl``, ``passwd`` and one ``<account>.password`` per account (0600; not with
certificates, where the CN is the account), ``dynamic-security.json``, ``mosquitto.conf`` (password file + ACL,
or mTLS + ACL) and ``mosquitto-dynsec.conf`` (the dynamic-security plugin instead). Passwords are only ever
written to their 0600 files, never printed or logged. With ``--force`` the files are rewritten and an account's
existing ``<account>.password`` is kept (so adding a terminal does not change the others' passwords) unless the
account is named by ``--rotate``. With ``--bridge HOST:PORT`` it also writes ``store-bridge.conf``, the store
broker's MQTT 5 bridge to the chain broker (``store-agent broker chain`` makes that broker's files; docs/fleet.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from agent.cli import chain_cmd
from agent.delivery.broker_chain import Bridge, BridgeTls, bridge_conf
from agent.delivery.broker_security import (
    DEFAULT_DYNSEC_ADMIN,
    DEFAULT_DYNSEC_FILE,
    DEFAULT_HUB_ACCOUNT,
    DEFAULT_INSTALL_DIR,
    BrokerConf,
    BrokerSecurityError,
    ListenerTls,
    StoreBroker,
    ToolMissing,
    acl_file,
    check_account_name,
    default_dynsec_plugin,
    dynamic_security_json,
    hashed_password_file,
    mosquitto_conf,
    new_password,
    terminal_hints,
)

#: Files written by every run, with their modes (secrets 0600; the rest is no secret).
PUBLIC_FILES = {"acl": 0o644, "mosquitto.conf": 0o644, "mosquitto-dynsec.conf": 0o644}
SECRET_FILES = {"dynamic-security.json": 0o600, "passwd": 0o600}
PASSWORD_SUFFIX = ".password"
#: The store broker's bridge to the chain broker (0600 when it holds the bridge's password); it sorts after
#: mosquitto.conf in a conf.d directory, so the listener settings come before the ``connection`` block.
BRIDGE_FILE = "store-bridge.conf"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("broker", help="make a store broker's accounts, ACL and mosquitto settings")
    actions = parser.add_subparsers(dest="broker_action", required=True)
    config = actions.add_parser(
        "config",
        help="write acl, passwd, <account>.password, dynamic-security.json and mosquitto.conf into --out",
        description="Each terminal account (<store>-<terminal>) may only publish its own status, health, events "
        "and replies and read its own commands and acks; only the hub account(s) may send commands and acks.",
    )
    config.add_argument("--store", required=True, help="the store id (store.id in the terminals' config)")
    config.add_argument(
        "--terminal", action="append", required=True, help="a terminal id (terminal.id); repeat for each terminal"
    )
    config.add_argument("--prefix", default="store", help="mqtt.topic_prefix of the terminals (default: store)")
    config.add_argument(
        "--hub-account",
        action="append",
        help=f"the hub's account (default: {DEFAULT_HUB_ACCOUNT}); repeat for each hub process connected at the "
        "same time (the client id is the account, so one connection per account)",
    )
    add_listener_arguments(config, "CA that signs the client certificates (enables mTLS)")
    config.add_argument(
        "--dynsec-file",
        type=Path,
        default=DEFAULT_DYNSEC_FILE,
        help=f"where the plugin keeps dynamic-security.json; mosquitto must write it (default: {DEFAULT_DYNSEC_FILE})",
    )
    config.add_argument("--dynsec-plugin", type=Path, help="path of mosquitto_dynamic_security.so on the broker")
    config.add_argument(
        "--dynsec-admin",
        default=DEFAULT_DYNSEC_ADMIN,
        help=f"account for `mosquitto_ctrl dynsec` (default: {DEFAULT_DYNSEC_ADMIN}); 'none' for no admin",
    )
    config.add_argument(
        "--rotate", action="append", default=[], metavar="ACCOUNT", help="give this account a new password"
    )
    config.add_argument("--out", type=Path, required=True, help="directory to write the files into")
    config.add_argument("--force", action="store_true", help="rewrite existing files (keeps existing passwords)")
    bridge = config.add_argument_group("bridge to the chain broker (writes store-bridge.conf; docs/fleet.md)")
    bridge.add_argument("--bridge", metavar="HOST:PORT", help="the chain broker's address: add a bridge to it")
    bridge.add_argument("--bridge-username", help="the bridge's account on the chain broker (default: bridge-<store>)")
    bridge.add_argument(
        "--bridge-password-file",
        type=Path,
        help="a file holding the bridge account's password (`broker chain` writes bridge-<store>.password)",
    )
    bridge.add_argument("--bridge-ca", type=Path, help="CA of the chain broker's certificate (enables TLS)")
    bridge.add_argument("--bridge-cert", type=Path, help="the bridge's client certificate (mTLS)")
    bridge.add_argument("--bridge-key", type=Path, help="the bridge's client key (mTLS)")
    config.set_defaults(func=run_config)
    chain_cmd.register(actions)


def add_listener_arguments(parser: argparse.ArgumentParser, ca_help: str) -> None:
    """The listener options every generated broker config takes (store broker and chain broker)."""
    parser.add_argument("--port", type=int, help="listener port (default: 1883, or 8883 with --tls-*)")
    parser.add_argument("--bind", help="listener address (default: every interface)")
    parser.add_argument("--tls-ca", type=Path, help=ca_help)
    parser.add_argument("--tls-cert", type=Path, help="the broker's certificate")
    parser.add_argument("--tls-key", type=Path, help="the broker's private key")
    parser.add_argument(
        "--install-dir",
        type=Path,
        default=DEFAULT_INSTALL_DIR,
        help=f"where acl and passwd will be on the broker (default: {DEFAULT_INSTALL_DIR})",
    )


def listener(args: argparse.Namespace) -> tuple[ListenerTls | None, int]:
    """The TLS files (all three or none) and the port the listener options name."""
    tls_args = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(tls_args) and not all(tls_args):
        raise BrokerSecurityError("--tls-ca, --tls-cert and --tls-key go together")
    tls = None
    if args.tls_ca and args.tls_cert and args.tls_key:
        tls = ListenerTls(args.tls_ca.resolve(), args.tls_cert.resolve(), args.tls_key.resolve())
    port = args.port or (8883 if tls else 1883)
    if not 0 < port < 65536:
        raise BrokerSecurityError(f"--port {port} is not a port")
    return tls, port


def refuse_existing(out: Path, names: list[str], force: bool) -> int | None:
    """Exit 1 (and why) when a file to write exists and --force was not given; None to go on."""
    from agent.cli import EXIT_FAILURE

    existing = None if force else next((out / n for n in names if (out / n).exists()), None)
    if existing is None:
        return None
    return _fail(f"{existing} exists (use --force to rewrite; passwords are kept)", EXIT_FAILURE)


def passwords_for(out: Path, accounts: list[str], rotate: list[str]) -> tuple[dict[str, str], list[str]]:
    """Each account's password: the one already in ``out`` (kept, named in the second list), else a new one."""
    passwords: dict[str, str] = {}
    kept: list[str] = []
    for account in accounts:
        old = None if account in rotate else _existing_password(out / f"{account}{PASSWORD_SUFFIX}")
        passwords[account] = old or new_password()
        if old:
            kept.append(account)
    return passwords, kept


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _write(path: Path, text: str, mode: int) -> None:
    """Write through a temporary file created with ``mode`` (a secret is never readable by others, even briefly)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, mode)  # the umask may have taken bits away from a public file
    os.replace(tmp, path)


def _existing_password(path: Path) -> str | None:
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8").rstrip("\r\n")
    return text or None


def _bridge(args: argparse.Namespace) -> Bridge | None:
    """The bridge the arguments ask for (``None`` without ``--bridge``)."""
    extra = (args.bridge_username, args.bridge_password_file, args.bridge_ca, args.bridge_cert, args.bridge_key)
    if args.bridge is None:
        if any(extra):
            raise BrokerSecurityError("the --bridge-* options need --bridge HOST:PORT")
        return None
    if (args.bridge_cert is None) != (args.bridge_key is None):
        raise BrokerSecurityError("--bridge-cert and --bridge-key go together")
    if args.bridge_cert is not None and args.bridge_ca is None:
        raise BrokerSecurityError("--bridge-cert needs --bridge-ca")
    tls = None
    if args.bridge_ca is not None:
        cert = args.bridge_cert.resolve() if args.bridge_cert else None
        key = args.bridge_key.resolve() if args.bridge_key else None
        tls = BridgeTls(args.bridge_ca.resolve(), cert, key)
    password = None
    if args.bridge_password_file is not None:
        password = args.bridge_password_file.read_text(encoding="utf-8").strip()
    return Bridge(args.store, args.bridge, args.prefix, args.bridge_username, password, tls)


def run_config(args: argparse.Namespace) -> int:
    """Exit 0 written; 1 a file exists (without --force) or cannot be written; 2 bad arguments; 69 no
    mosquitto_passwd."""
    from agent.cli import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE

    admin = None if args.dynsec_admin == "none" else args.dynsec_admin
    try:
        tls, port = listener(args)
        layout = StoreBroker(
            args.store,
            tuple(args.terminal),
            args.prefix,
            tuple(dict.fromkeys(args.hub_account or [DEFAULT_HUB_ACCOUNT])),
        )
        conf = BrokerConf(
            port=port,
            bind=args.bind,
            tls=tls,
            install_dir=args.install_dir,
            dynsec_file=args.dynsec_file,
            dynsec_plugin=args.dynsec_plugin or default_dynsec_plugin(),
        )
        if admin is not None:
            check_account_name(admin, "--dynsec-admin")
            if admin in layout.accounts:
                raise BrokerSecurityError(f"account name used twice: {admin}")
        accounts = [*layout.accounts, *([admin] if admin else [])]
        unknown = sorted(set(args.rotate) - set(accounts))
        if unknown:
            raise BrokerSecurityError(f"--rotate {unknown[0]}: no such account (accounts: {', '.join(accounts)})")
        bridge = _bridge(args)
    except BrokerSecurityError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        return _fail(f"cannot read {exc.filename}: {exc.strerror}", EXIT_FAILURE)

    out: Path = args.out
    names = [*PUBLIC_FILES, "dynamic-security.json"]
    if bridge is not None:
        names.append(BRIDGE_FILE)
    if tls is None:
        names += ["passwd", *(f"{a}{PASSWORD_SUFFIX}" for a in accounts)]
    refused = refuse_existing(out, names, args.force)
    if refused is not None:
        return refused

    passwords: dict[str, str] | None = None
    kept: list[str] = []
    if tls is None:
        passwords, kept = passwords_for(out, accounts, args.rotate)
    try:
        files = {
            "acl": acl_file(layout),
            "mosquitto.conf": mosquitto_conf(layout, conf, "acl"),
            "mosquitto-dynsec.conf": mosquitto_conf(layout, conf, "dynsec"),
            "dynamic-security.json": dynamic_security_json(layout, passwords, admin=admin),
        }
        if bridge is not None:
            files[BRIDGE_FILE] = bridge_conf(bridge)
        if passwords is not None:
            files["passwd"] = hashed_password_file({a: passwords[a] for a in layout.accounts})
    except ToolMissing as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    except BrokerSecurityError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, text in files.items():
            if name == BRIDGE_FILE:
                mode = 0o600 if bridge is not None and bridge.password else 0o644
            else:
                mode = PUBLIC_FILES.get(name, SECRET_FILES.get(name, 0o600))
            _write(out / name, text, mode)
        for account, password in (passwords or {}).items():
            _write(out / f"{account}{PASSWORD_SUFFIX}", password + "\n", 0o600)
    except OSError as exc:
        return _fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_FAILURE)

    print(f"wrote {', '.join(n for n in names if (out / n).exists())} into {out}")
    if kept:
        print(f"kept the existing passwords of {', '.join(kept)}")
    print(f"hub account(s): {', '.join(layout.hub_accounts)}; terminal accounts: {', '.join(layout.terminal_accounts)}")
    for hint in terminal_hints(layout, tls is not None):
        print(hint)
    return EXIT_OK
