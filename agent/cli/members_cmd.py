"""``store-agent members enroll | list | show | erase | audit``: the gallery of consenting members, from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli import add_config_option
from agent.errors import AgentError
from agent.identity.enrollment import (
    UNREADABLE,
    EnrollmentError,
    EraseResult,
    enroll_files,
    erase_member,
    register_erasure_hook,
    unregister_erasure_hook,
)
from agent.identity.gallery import Consent, Gallery, GalleryError
from agent.identity.keys import GalleryKeyError
from agent.identity.sync import set_recorder

if TYPE_CHECKING:
    from agent.config.loader import LoadedConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("members", help="enrol, list, show and erase members")
    sub = parser.add_subparsers(dest="members_action", required=True)
    enroll = sub.add_parser("enroll", help="enrol a member from photos (one face each)")
    enroll.add_argument("--member-id", required=True)
    enroll.add_argument("--consent-ref", required=True, help="reference of the signed consent form")
    enroll.add_argument("--scope", default="identification")
    enroll.add_argument("--expires", type=_expiry, help="consent expiry date, YYYY-MM-DD (templates are deleted then)")
    enroll.add_argument("--guardian", action="store_true", help="consent given by a guardian (a minor)")
    enroll.add_argument(
        "--coverage",
        choices=("terminal", "store", "chain"),
        default="terminal",
        help="where the consent applies; store/chain share the member with the store's terminals (identity.sync)",
    )
    enroll.add_argument("photos", nargs="+")
    sub.add_parser("list", help="enrolled members and their consent")
    for name in ("show", "erase"):
        p = sub.add_parser(name)
        p.add_argument("member_id")
    audit = sub.add_parser("audit", help="verify the keyed audit chain; exit 1 when it is broken")
    audit.add_argument("--head", action="store_true", help="print the head (sequence, MAC) as JSON, as health has it")
    for p in sub.choices.values():
        add_config_option(p)
    parser.set_defaults(func=run)


def _expiry(text: str) -> float:
    """``--expires``: a calendar date (the start of that day, UTC) as a Unix time; argparse reports a bad one."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date written YYYY-MM-DD, e.g. 2027-01-31") from None


def _erase_with_outbox(loaded: LoadedConfig, gallery: Gallery, member_id: str) -> EraseResult:
    """Erase from the gallery and from the terminal's outbox file, when there is one.

    With the daemon running, prefer the ``erase-member`` MQTT command: it also
    drops events still in the daemon's memory, before their group commit.
    """
    from agent.delivery.outbox import OUTBOX_FILE, Outbox
    from agent.delivery.sqlite_file import purge_moved_aside
    from agent.delivery.topics import Topics

    path = Path(loaded.config.storage.state_dir) / OUTBOX_FILE
    if not path.is_file():
        result = erase_member(gallery, member_id)
        purge_moved_aside(path, member_id)  # no live outbox, but a moved-aside one may hold the member
        return result
    outbox = Outbox(path, loaded.config.storage.outbox, Topics.for_config(loaded.config))
    register_erasure_hook(outbox.delete_member_events)
    try:
        return erase_member(gallery, member_id)
    finally:
        unregister_erasure_hook(outbox.delete_member_events)
        outbox.close()


def run(args: argparse.Namespace) -> int:
    """Exit 0 done; 65 a photo could not be read or none was usable (the readable, usable ones are enrolled);
    1 an unknown member for show/erase; 78 the config or the gallery key is unusable (ConfigError propagates)."""
    from agent.cli import EXIT_CONFIG, EXIT_DATA
    from agent.config.loader import load_config
    from agent.pipelines.face.resources import gallery_path, load_analyzer, open_gallery
    from agent.pipelines.face.settings import FaceSettings
    from agent.runtime.member_sync import open_recorder

    loaded = load_config(args.config)
    config = loaded.config
    face = config.pipelines.settings(FaceSettings)
    if args.members_action == "audit" and not gallery_path(Path(config.storage.state_dir)).exists():
        print(f"no gallery at {gallery_path(Path(config.storage.state_dir))}: no audit chain to verify")
        return 0
    try:
        gallery = open_gallery(face, Path(config.storage.state_dir))
        opened = open_recorder(config, Path(config.storage.state_dir))
    except (GalleryError, GalleryKeyError, AgentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if opened is not None:  # the daemon announces what is recorded here when it next runs
        set_recorder(opened[0])
    try:
        action = args.members_action
        if action == "enroll":
            consent = Consent(args.consent_ref, args.scope, 0.0, args.expires, args.guardian, args.coverage)
            analyzer = load_analyzer(face, config.models.options())
            try:
                result = enroll_files(gallery, analyzer, args.member_id, consent, args.photos, face.liveness_threshold)
            except EnrollmentError as exc:
                for photo, reason in exc.refusals:
                    print(f"refused {photo}: {reason}", file=sys.stderr)
                return EXIT_DATA
            for v in result.verdicts:
                print(f"{'accepted' if v.accepted else 'refused'} {v.photo}" + (f": {v.reason}" if v.reason else ""))
            print(f"enrolled {args.member_id} with {result.enrolled} template(s) from {result.photos} photo(s)")
            if any(v.reason == UNREADABLE for v in result.verdicts):
                return EXIT_DATA
        elif action == "list":
            for m in gallery.members():
                print(
                    json.dumps(
                        {
                            "member_id": m.member_id,
                            "templates": m.templates,
                            "consent_ref": m.consent.reference,
                            "expires_at": m.consent.expires_at,
                            "guardian": m.consent.guardian,
                        }
                    )
                )
        elif action == "show":
            m = gallery.member(args.member_id)
            gallery.record("export", m.member_id, {"what": "consent record"})
            print(
                json.dumps(
                    {
                        "member_id": m.member_id,
                        "created_at": m.created_at,
                        "templates": m.templates,
                        "consent": m.consent.__dict__,
                    },
                    indent=2,
                )
            )
        elif action == "audit":
            return _audit(gallery, args.head)
        else:
            result_e = _erase_with_outbox(loaded, gallery, args.member_id)
            if not result_e.was_enrolled:
                print(f"member {args.member_id!r} is not enrolled", file=sys.stderr)
                return 1
            print(f"erased {args.member_id}; queued events removed: {result_e.queued_events_removed}")
        return 0
    except GalleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        gallery.close()
        if opened is not None:
            set_recorder(None)
            opened[0].journal.close()


def _audit(gallery: Gallery, head_only: bool) -> int:
    """Verify the chain: 0 and its head, or 1 and the first entry that fails."""
    from agent.identity.audit import AuditBroken

    try:
        head = gallery.audit_head()
    except AuditBroken as exc:
        print(f"error: {gallery.path}: {exc}", file=sys.stderr)
        return 1
    if head_only:
        print(json.dumps({"head_seq": head.seq, "head_mac": head.mac}))
    else:
        redacted = sum(e.redacted for e in gallery.audit_entries())
        print(f"audit chain of {gallery.path} verifies: {head.seq} entries ({redacted} redacted), head {head.mac[:16]}")
    return 0
