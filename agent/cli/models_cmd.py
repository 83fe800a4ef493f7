"""``store-agent models list | fetch | verify``: provision and check the manifest's model files.

Without names, ``fetch`` and ``verify`` work on what the config's enabled pipelines load (``--config``, default
/etc/store-agent/store.yaml); ``verify`` without a config checks every model that is installed. ``fetch`` tries
the chain's mirror (``models.mirror``, or ``--mirror``) before each model's own sources.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.cli import EXIT_USAGE, add_config_option
from agent.cli.progress import Progress
from agent.config.loader import load_config
from models.manifest import ModelEntry, ModelError, load_manifest
from models.provision import check_mirror, fetch, verify

DEFAULT_CONFIG = Path("/etc/store-agent/store.yaml")
DEFAULT_DIR = Path("/var/lib/store-agent/models")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("models", help="list, fetch and verify model files")
    parser.add_argument("action", choices=["list", "fetch", "verify"])
    parser.add_argument("names", nargs="*", help="manifest names (default: what the config's enabled pipelines load)")
    add_config_option(parser, required=False, help=f"store YAML (default: {DEFAULT_CONFIG} when it exists)")
    parser.add_argument(
        "--dir", type=Path, default=None, help=f"models directory (default: the config's, or {DEFAULT_DIR})"
    )
    parser.add_argument(
        "--mirror", default=None, help="model mirror to try first (default: the config's models.mirror)"
    )
    parser.add_argument("--force", action="store_true", help="fetch even when a verified copy is installed")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    manifest = load_manifest()
    config_path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    config = load_config(config_path).config if config_path is not None else None
    directory: Path = args.dir or (Path(config.models.directory) if config else DEFAULT_DIR)
    mirror = args.mirror or (config.models.mirror if config else None)
    if args.mirror:
        try:
            check_mirror(args.mirror)
        except ValueError as exc:
            print(f"--mirror: {exc}", file=sys.stderr)
            return EXIT_USAGE
    names: list[str] = list(args.names)
    needed_by: dict[str, list[str]] = config.pipelines.required_models() if config else {}
    if not names:
        if args.action == "list":
            names = sorted(manifest)
        elif config is not None:
            names = list(needed_by)
            if not names:
                print(f"{config_path}: no enabled pipeline loads a model; nothing to {args.action}", file=sys.stderr)
                return 0
        elif args.action == "verify":
            names = [n for n in sorted(manifest) if (directory / manifest[n].file).exists()]
            if not names:
                print(f"no model is installed in {directory}", file=sys.stderr)
                return 0
        else:
            print(
                f"models fetch: name the models, or give the config whose pipelines need them (--config; "
                f"{DEFAULT_CONFIG} does not exist)",
                file=sys.stderr,
            )
            return EXIT_USAGE
    unknown = [n for n in names if n not in manifest]
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)} (known: {', '.join(sorted(manifest))})", file=sys.stderr)
        return EXIT_USAGE
    failed = 0
    for name in names:
        model: ModelEntry = manifest[name]
        if args.action == "list":
            state = "installed" if (directory / model.file).exists() else "missing"
            used = ",".join(needed_by.get(name, [])) or "-"
            sources = ", ".join(s.kind for s in model.sources)
            print(f"{name}\t{model.task}\t{model.licence}\t{state}\t{sources}\t{used}")
            continue
        if args.action == "fetch":
            with Progress(name, model.size, unit="B") as progress:
                try:
                    path = fetch(
                        model,
                        directory,
                        lambda _, done, total: progress.update(done, total),
                        force=args.force,
                        mirror=mirror,
                    )
                    progress.finish(f"ok {path}")
                except ModelError as exc:
                    failed += 1
                    progress.finish(f"FAILED: {exc}")
            continue
        try:
            verify(model, directory)
            print(f"{name}: ok")
        except ModelError as exc:
            failed += 1
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
    return 1 if failed else 0
