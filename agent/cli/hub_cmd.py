"""``store-agent hub``: the hub's keys and signed commands; ``store-agent keys``: this terminal's public key.

    store-agent hub keygen --out /etc/store-hub            # hub.key (0600) and hub.pub (for every terminal)
    store-agent keys --config store.yaml                    # on a terminal: its key line, for the hub's registry
    store-agent hub register --terminals terminals.yaml STORE TERMINAL "store-agent-terminal-v1 ..."
    store-agent hub send --config store.yaml --key hub.key [--terminal ID] erase-member '{"member_id": "M-1"}'
    store-agent hub serve --config chain.yaml --key hub.key --state-dir DIR --processes 4   # agent.cli.serve_cmd

``send`` exits 0 when the terminal confirmed (ok, with a MAC that proves it was that terminal), 1 when it
refused or failed (the reply says why) or the reply could not be verified, 69 when no reply came in time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from agent.cli import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, add_config_option, fleet_cmd, serve_cmd
from agent.trust.keys import HubPrivateKey, TrustKeyError
from agent.trust.messages import TerminalRegistry, Verdict

DEFAULT_REGISTRY = "terminals.yaml"


def register(sub: Any) -> None:
    hub = sub.add_parser("hub", help="the hub's keys and signed commands (keygen, register, send)")
    actions = hub.add_subparsers(dest="hub_action", metavar="ACTION", required=True)
    keygen = actions.add_parser("keygen", help="make the hub's key pair: hub.key (secret) and hub.pub")
    keygen.add_argument("--out", type=Path, required=True, help="directory for hub.key and hub.pub")
    keygen.add_argument("--force", action="store_true", help="replace existing files")
    reg = actions.add_parser("register", help="add a terminal's public key (from `store-agent keys`) to a registry")
    reg.add_argument("--terminals", type=Path, required=True, help="the registry file (YAML), created if missing")
    reg.add_argument("store", help="store id")
    reg.add_argument("terminal", help="terminal id")
    reg.add_argument("key", help='the line `store-agent keys` printed: "store-agent-terminal-v1 ..."')
    send = actions.add_parser("send", help="sign a command, send it to a terminal, print its verified reply")
    add_config_option(send, help="a store YAML file (broker and store id)")
    send.add_argument("--key", type=Path, required=True, help="the hub's private key (hub.key)")
    send.add_argument(
        "--terminals", type=Path, help=f"registry of terminal keys (default: {DEFAULT_REGISTRY} beside --key)"
    )
    send.add_argument("--terminal", "-t", help="terminal id (default: the config's terminal.id)")
    send.add_argument("--ttl", type=float, default=60.0, help="seconds the command stays valid (default 60)")
    send.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the reply (default 30)")
    send.add_argument("command", help="command name, e.g. erase-member")
    send.add_argument("arguments", nargs="?", default="{}", help="the command's arguments as a JSON object")
    push = actions.add_parser("push-config", help="push each terminal's config (and the base it names), signed")
    add_config_option(push, help="a YAML file with the broker (mqtt)")
    push.add_argument("--key", type=Path, required=True, help="the hub's private key (hub.key)")
    push.add_argument(
        "--terminals", type=Path, help=f"registry of terminal keys (default: {DEFAULT_REGISTRY} beside --key)"
    )
    push.add_argument("--store", required=True, help="store id")
    push.add_argument(
        "--terminal",
        "-t",
        action="append",
        help="only this terminal (repeatable; default: every registered terminal of the store with a file in DIR)",
    )
    push.add_argument("--restart", action="store_true", help="allow changes that only a restart applies (mqtt, ...)")
    push.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each reply (default 60)")
    push.add_argument("directory", type=Path, help="DIR with <terminal>.yaml per terminal and the base they name")
    hub.set_defaults(func=run)
    fleet_cmd.register(actions)
    serve_cmd.register(actions)
    keys = sub.add_parser("keys", help="print this terminal's public key (register it at the hub)")
    add_config_option(keys)
    keys.set_defaults(func=show_terminal_key)


def read_hub_key(path: Path) -> HubPrivateKey:
    try:
        return HubPrivateKey.parse(path.read_text(encoding="ascii"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise TrustKeyError(f"cannot read the hub key {path}: {exc}") from None


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)


def keygen(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    secret, public = args.out / "hub.key", args.out / "hub.pub"
    for path in (secret, public):
        if path.exists() and not args.force:
            print(
                f"error: {path} exists (--force replaces it, and every terminal must then get the new hub.pub)",
                file=sys.stderr,
            )
            return EXIT_FAILURE
    key = HubPrivateKey.generate()
    _write_secret(secret, key.text())
    public.write_text(key.public.line() + "\n", encoding="ascii")
    print(f"wrote {secret} (keep it secret: it commands every terminal) and {public} (key id {key.kid})")
    print(f"on each terminal: trust.hub_keys: [{public.name}] in the store YAML, with the file beside it")
    return EXIT_OK


def send(args: argparse.Namespace) -> int:
    from agent.config.loader import load_config
    from agent.delivery.hub import HubClient

    try:
        arguments = json.loads(args.arguments)
    except ValueError as exc:
        print(f"error: the arguments are not JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(arguments, dict):
        print('error: the arguments must be a JSON object, e.g. \'{"member_id": "M-1"}\'', file=sys.stderr)
        return EXIT_USAGE
    config = load_config(args.config).config
    hub_key = read_hub_key(args.key)
    registry = TerminalRegistry.load(args.terminals or args.key.parent / DEFAULT_REGISTRY)
    terminal = args.terminal or config.terminal.id
    with HubClient(config.mqtt, config.store.id, hub_key, registry) as client:
        answer = client.request(terminal, args.command, arguments, ttl_s=args.ttl, timeout_s=args.timeout)
        last_error = client.conn.last_error
    if answer is None:
        where = f" ({last_error})" if last_error else ""
        print(f"error: no reply from {config.store.id}/{terminal} within {args.timeout:g} s{where}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(json.dumps(answer.payload, ensure_ascii=False))
    if answer.verdict is not Verdict.VERIFIED:
        print(f"error: the reply is {answer.verdict.value}: it is not proven to come from {terminal}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK if answer.payload.get("ok") else EXIT_FAILURE


def push_config(args: argparse.Namespace) -> int:
    """Exit 0 when every terminal runs its pushed config, 1 when one refused it (its reasons are printed) or
    reports another hash, 69 when one did not answer in time."""
    from agent.config.loader import BASE_KEY, config_hash, load_config, read_yaml
    from agent.delivery.hub import HubClient

    settings = load_config(args.config).config.mqtt
    registry = TerminalRegistry.load(args.terminals or args.key.parent / DEFAULT_REGISTRY)
    registered = sorted(t for s, t in registry.keys if s == args.store)
    wanted = args.terminal or [t for t in registered if (args.directory / f"{t}.yaml").is_file()]
    if not wanted:
        print(
            f"error: no <terminal>.yaml in {args.directory} for a registered terminal of {args.store}", file=sys.stderr
        )
        return EXIT_USAGE
    worst = EXIT_OK
    with HubClient(settings, args.store, read_hub_key(args.key), registry) as client:
        for terminal in wanted:
            path = args.directory / f"{terminal}.yaml"
            text = path.read_text(encoding="utf-8")
            base_name = read_yaml(text, str(path))[0].get(BASE_KEY)
            base = (args.directory / str(base_name)).read_text(encoding="utf-8") if base_name else None
            expected = config_hash(text.encode(), base.encode() if base is not None else None)
            request = {"config": text, "restart": args.restart, **({"base": base} if base is not None else {})}
            answer = client.request(terminal, "apply-config", request, timeout_s=args.timeout)
            if answer is None:
                print(f"{terminal}: no reply within {args.timeout:g} s")
                worst = max(worst, EXIT_UNAVAILABLE)
            elif answer.verdict is not Verdict.VERIFIED:
                print(f"{terminal}: reply {answer.verdict.value}: not proven to come from the terminal")
                worst = max(worst, EXIT_FAILURE)
            elif not answer.ok:
                print(f"{terminal}: refused: {answer.payload.get('error')}")
                worst = max(worst, EXIT_FAILURE)
            else:
                result = answer.payload["result"]
                runs = result.get("config_sha256")
                how = "restarting" if result.get("restart") else ("applied" if result.get("applied") else "unchanged")
                print(
                    f"{terminal}: {how}, config {str(runs)[:12]}"
                    + ("" if runs == expected else " (NOT what was pushed)")
                )
                worst = max(worst, EXIT_OK if runs == expected else EXIT_FAILURE)
    return worst


def register_terminal(args: argparse.Namespace) -> int:
    registry = TerminalRegistry.load(args.terminals)
    registry.add(args.store, args.terminal, args.key)
    print(f"{args.terminals}: {args.store}/{args.terminal} registered")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    action = {"keygen": keygen, "send": send, "register": register_terminal, "push-config": push_config}
    return action[args.hub_action](args)


def show_terminal_key(args: argparse.Namespace) -> int:
    """The terminal's public key line (the key is made on first use, as the daemon would)."""
    from agent.config.loader import load_config
    from agent.runtime.trust import terminal_key_path
    from agent.trust.keys import load_or_create_terminal_key

    config = load_config(args.config).config
    key = load_or_create_terminal_key(terminal_key_path(config))
    print(f"{config.store.id} {config.terminal.id} {key.line()}")
    return EXIT_OK
