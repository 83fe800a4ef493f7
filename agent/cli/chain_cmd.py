"""``store-agent broker chain``: the chain broker's accounts, ACL and mosquitto settings (docs/fleet.md).

Writes into ``--out``: ``acl`` (each store's bridge account ``bridge-<store>`` only its own store; hub accounts
every store), ``passwd`` and one ``<account>.password`` per account (0600), and ``mosquitto.conf``. A hub account
given with ``--hub-processes N`` becomes ``<account>-0`` ... ``<account>-<N-1>`` sharing one password in
``<account>.password``: what ``store-agent hub serve --processes N`` logs in with (process i as
``<mqtt.username>-<i>``), since the chain broker binds each connection's client id to its account. Existing
passwords are kept with ``--force`` unless named by ``--rotate``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.delivery.broker_chain import ChainBroker, chain_acl_file, chain_mosquitto_conf
from agent.delivery.broker_security import (
    BrokerConf,
    BrokerSecurityError,
    ToolMissing,
    check_account_name,
    hashed_password_file,
)

DEFAULT_HUB_ACCOUNTS = ("hub", "fleet")


def register(actions: Any) -> None:
    from agent.cli.broker_cmd import add_listener_arguments  # broker_cmd registers this module: no top import

    chain = actions.add_parser(
        "chain",
        help="write the chain broker's acl, passwd, <account>.password and mosquitto.conf into --out",
        description="Each store's bridge (account bridge-<store>) may only publish its store's status, health, "
        "events and replies and read its store's commands, acks and member states; hub accounts read every store.",
    )
    chain.add_argument("--store", action="append", required=True, help="a store id; repeat for each store")
    chain.add_argument("--prefix", default="store", help="mqtt.topic_prefix of the terminals (default: store)")
    chain.add_argument(
        "--hub-account",
        action="append",
        help=f"a hub account (default: {' and '.join(DEFAULT_HUB_ACCOUNTS)}: the consumers and the fleet "
        "coordinator); repeat for each",
    )
    chain.add_argument(
        "--hub-processes",
        type=int,
        default=1,
        metavar="N",
        help="the first hub account is used by `hub serve --processes N`: make N accounts <account>-<i> "
        "sharing its password (default 1: the account itself)",
    )
    add_listener_arguments(chain, "CA that signs the client certificates")
    chain.add_argument(
        "--rotate", action="append", default=[], metavar="ACCOUNT", help="give this account a new password"
    )
    chain.add_argument("--out", type=Path, required=True, help="directory to write the files into")
    chain.add_argument("--force", action="store_true", help="rewrite existing files (keeps existing passwords)")
    chain.set_defaults(func=run_chain)


def _logins(hub_accounts: list[str], processes: int) -> dict[str, str]:
    """Each login account to the account whose password it uses (the first hub account split per process)."""
    logins: dict[str, str] = {}
    for i, name in enumerate(hub_accounts):
        check_account_name(name, "hub account")
        if i == 0:
            logins |= {f"{name}-{n}": name for n in range(processes)}
        else:
            logins[name] = name
    return logins


def run_chain(args: argparse.Namespace) -> int:
    """Exit 0 written; 1 a file exists (without --force) or cannot be written; 2 bad arguments; 69 no
    mosquitto_passwd."""
    from agent.cli import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
    from agent.cli.broker_cmd import PASSWORD_SUFFIX, _fail, _write, listener, passwords_for, refuse_existing

    if not 1 <= args.hub_processes <= 64:
        return _fail("--hub-processes must be 1 to 64", EXIT_USAGE)
    try:
        tls, port = listener(args)
        hub = list(dict.fromkeys(args.hub_account or DEFAULT_HUB_ACCOUNTS))
        logins = _logins(hub, args.hub_processes)
        layout = ChainBroker(tuple(args.store), args.prefix, tuple(logins))
        conf = BrokerConf(port=port, bind=args.bind, tls=tls, install_dir=args.install_dir)
        secrets_of = {**logins, **{a: a for a in layout.bridge_accounts}}
        owners = list(dict.fromkeys(secrets_of.values()))
        unknown = sorted(set(args.rotate) - set(owners))
        if unknown:
            raise BrokerSecurityError(f"--rotate {unknown[0]}: no such account (accounts: {', '.join(owners)})")
    except BrokerSecurityError as exc:
        return _fail(str(exc), EXIT_USAGE)

    out: Path = args.out
    names = ["acl", "mosquitto.conf", "passwd", *(f"{o}{PASSWORD_SUFFIX}" for o in owners)]
    refused = refuse_existing(out, names, args.force)
    if refused is not None:
        return refused
    passwords, kept = passwords_for(out, owners, args.rotate)
    try:
        files = {
            "acl": chain_acl_file(layout),
            "mosquitto.conf": chain_mosquitto_conf(layout, conf),
            "passwd": hashed_password_file({login: passwords[owner] for login, owner in secrets_of.items()}),
        }
    except ToolMissing as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    except BrokerSecurityError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, text in files.items():
            _write(out / name, text, 0o600 if name == "passwd" else 0o644)
        for owner, password in passwords.items():
            _write(out / f"{owner}{PASSWORD_SUFFIX}", password + "\n", 0o600)
    except OSError as exc:
        return _fail(f"cannot write {exc.filename}: {exc.strerror}", EXIT_FAILURE)
    print(f"wrote {', '.join(names)} into {out}")
    if kept:
        print(f"kept the existing passwords of {', '.join(kept)}")
    print(f"hub account(s): {', '.join(logins)}; store bridges: {', '.join(layout.bridge_accounts)}")
    for account, store in layout.bridge_accounts.items():
        print(
            f"store {store}: store-agent broker config --store {store} ... --bridge HOST:PORT "
            f"--bridge-password-file {account}{PASSWORD_SUFFIX}"
        )
    return EXIT_OK
