"""``store-agent broker config``: a store broker's accounts, ACL and mosquitto settings (docs/broker-security.md).

Writes into ``--out``: ``acl``, ``passwd`` and one ``<account>.password`` per account (0600; not with
certificates, where the CN is the account), ``dynamic-security.json``, ``mosquitto.conf`` (password file + ACL,
or mTLS + ACL) and ``mosquitto-dynsec.conf`` (the dynamic-security plugin instead). Passwords are only ever
written to their 0600 files, never printed or logged. With ``--force`` the files are rewritten and an account's
existing ``<account>.password`` is kept (so adding a terminal does not change the others' passwords) unless the
account is named by ``--rotate``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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
    config.add_argument("--port", type=int, help="listener port (default: 1883, or 8883 with --tls-*)")
    config.add_argument("--bind", help="listener address (default: every interface)")
    config.add_argument("--tls-ca", type=Path, help="CA that signs the client certificates (enables mTLS)")
    config.add_argument("--tls-cert", type=Path, help="the broker's certificate")
    config.add_argument("--tls-key", type=Path, help="the broker's private key")
    config.add_argument(
        "--install-dir",
        type=Path,
        default=DEFAULT_INSTALL_DIR,
        help=f"where acl and passwd will be on the broker (default: {DEFAULT_INSTALL_DIR})",
    )
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
    config.set_defaults(func=run_config)


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


def run_config(args: argparse.Namespace) -> int:
    """Exit 0 written; 1 a file exists (without --force) or cannot be written; 2 bad arguments; 69 no
    mosquitto_passwd."""
    from agent.cli import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE

    tls_args = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(tls_args) and not all(tls_args):
        return _fail("--tls-ca, --tls-cert and --tls-key go together", EXIT_USAGE)
    admin = None if args.dynsec_admin == "none" else args.dynsec_admin
    try:
        layout = StoreBroker(
            args.store,
            tuple(args.terminal),
            args.prefix,
            tuple(dict.fromkeys(args.hub_account or [DEFAULT_HUB_ACCOUNT])),
        )
        tls = None
        if args.tls_ca and args.tls_cert and args.tls_key:
            tls = ListenerTls(args.tls_ca.resolve(), args.tls_cert.resolve(), args.tls_key.resolve())
        port = args.port or (8883 if tls else 1883)
        if not 0 < port < 65536:
            raise BrokerSecurityError(f"--port {port} is not a port")
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
    except BrokerSecurityError as exc:
        return _fail(str(exc), EXIT_USAGE)

    out: Path = args.out
    names = [*PUBLIC_FILES, "dynamic-security.json"]
    if tls is None:
        names += ["passwd", *(f"{a}{PASSWORD_SUFFIX}" for a in accounts)]
    if not args.force:
        existing = next((out / n for n in names if (out / n).exists()), None)
        if existing is not None:
            return _fail(f"{existing} exists (use --force to rewrite; passwords are kept)", EXIT_FAILURE)

    passwords: dict[str, str] | None = None
    kept: list[str] = []
    if tls is None:
        passwords = {}
        for account in accounts:
            old = None if account in args.rotate else _existing_password(out / f"{account}{PASSWORD_SUFFIX}")
            passwords[account] = old or new_password()
            if old:
                kept.append(account)
    try:
        files = {
            "acl": acl_file(layout),
            "mosquitto.conf": mosquitto_conf(layout, conf, "acl"),
            "mosquitto-dynsec.conf": mosquitto_conf(layout, conf, "dynsec"),
            "dynamic-security.json": dynamic_security_json(layout, passwords, admin=admin),
        }
        if passwords is not None:
            files["passwd"] = hashed_password_file({a: passwords[a] for a in layout.accounts})
    except ToolMissing as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    except BrokerSecurityError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, text in files.items():
            _write(out / name, text, PUBLIC_FILES.get(name, SECRET_FILES.get(name, 0o600)))
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
