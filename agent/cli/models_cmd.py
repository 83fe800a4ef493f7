"""``store-agent models list | fetch | verify``: provision and check the manifest's model files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.cli.progress import Progress
from models.manifest import ModelError, load_manifest
from models.provision import fetch, verify


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("models", help="list, fetch and verify model files")
    parser.add_argument("action", choices=["list", "fetch", "verify"])
    parser.add_argument("names", nargs="*", help="manifest names (default: all)")
    parser.add_argument("--dir", type=Path, default=Path("/var/lib/store-agent/models"), help="models directory")
    parser.add_argument("--force", action="store_true", help="fetch even when a verified copy is installed")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    manifest = load_manifest()
    names = args.names or sorted(manifest)
    unknown = [n for n in names if n not in manifest]
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)} (known: {', '.join(sorted(manifest))})", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        model = manifest[name]
        if args.action == "list":
            state = "installed" if (args.dir / model.file).is_file() else "missing"
            print(f"{name}\t{model.task}\t{model.licence}\t{state}\t{', '.join(s.kind for s in model.sources)}")
            continue
        if args.action == "fetch":
            with Progress(name, model.size, unit="B") as progress:
                try:
                    path = fetch(model, args.dir, lambda _, done, total: progress.update(done, total), force=args.force)
                    progress.finish(f"ok {path}")
                except ModelError as exc:
                    failed += 1
                    progress.finish(f"FAILED: {exc}")
            continue
        try:
            verify(model, args.dir)
            print(f"{name}: ok")
        except ModelError as exc:
            failed += 1
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
    return 1 if failed else 0
