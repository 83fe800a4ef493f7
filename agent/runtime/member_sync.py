"""The daemon's side of store-wide members (``identity.sync``): announce what was enrolled or erased here, and
import what the hub publishes for the store.

Announcements leave the journal (``agent.identity.sync``) as ``member.enrolled`` / ``member.erased`` events
through the outbox, so they are as durable as any event. Imports arrive on ``<prefix>/<store>/_members/<ref>``
(retained, so a terminal that was away catches up when it connects), are checked against the hub's signature,
and are applied in order of the hub's version: an enrolment replaces the member's templates and consent with the
store's merged state, an erasure erases the member here without announcing it again.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config.schema import StoreConfig
from agent.errors import AgentError
from agent.events import EventBody
from agent.identity.enrollment import erase_member
from agent.identity.gallery import Consent, Gallery, GalleryError
from agent.identity.keys import GalleryKeyError
from agent.identity.sync import (
    JOURNAL_FILE,
    MemberEnrolled,
    MemberErased,
    SyncError,
    SyncJournal,
    SyncRecorder,
    load_store_key,
    member_ref,
    open_templates,
)
from agent.trust.keys import HubPublicKey
from agent.trust.messages import AckCheck, check_hub_signature

logger = logging.getLogger(__name__)

#: A member state larger than this is not read (templates of a few dozen photos fit easily).
MAX_STATE_BYTES = 512 * 1024


#: The retained state naming every member's current version (member states are 32 hex digits, so no clash).
MANIFEST = "manifest"


def members_filter(prefix: str, store_id: str) -> str:
    return f"{prefix}/{store_id}/_members/+"


@dataclass
class MemberSyncStats:
    announced: int = 0
    imported: int = 0
    erased: int = 0
    refused: int = 0


class MemberSync:
    def __init__(
        self,
        recorder: SyncRecorder,
        key: bytes,
        hub_keys: Sequence[HubPublicKey],
        open_gallery: Callable[[], Gallery | None],
        shared_gallery: Callable[[], Gallery | None],
        emit: Callable[[EventBody], object],
        flush: Callable[[], bool],
        topic_prefix: str,
    ) -> None:
        self.recorder = recorder
        self.journal = recorder.journal
        self._key = key
        self._hub_keys = {k.kid: k for k in hub_keys}
        self._open_gallery = open_gallery
        self._shared_gallery = shared_gallery
        self._emit = emit
        self._flush = flush
        self.prefix = f"{topic_prefix}/{recorder.store_id}/_members/"
        self.stats = MemberSyncStats()
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=1024)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="member-sync", daemon=True)

    # --- outgoing ------------------------------------------------------------------------------

    def announce(self, captured_at: float) -> int:
        """Turn the journal's pending entries into events; entries leave the journal once the outbox holds them
        (otherwise they are announced again at the next try: the hub takes a repeated announcement as the same)."""
        pending = self.journal.pending()
        if not pending:
            return 0
        accepted = True
        for _, kind, ref, member_id, body in pending:
            if kind == "enrolled" and member_id is not None:
                event: EventBody = MemberEnrolled(
                    captured_at=captured_at,
                    member_id=member_id,
                    member_ref=ref,
                    consent=body["consent"],
                    model=body["model"],
                    templates=body["templates"],
                )
            else:
                event = MemberErased(captured_at=captured_at, member_ref=ref, reason=str(body.get("reason", "")))
            accepted = self._emit(event) is not None and accepted  # None: the outbox refused it (it is closing)
        if accepted and self._flush():
            self.journal.sent([row[0] for row in pending])
            self.stats.announced += len(pending)
        return len(pending)

    # --- incoming ------------------------------------------------------------------------------

    def offer(self, topic: str, payload: bytes) -> bool:
        """From the network thread: a member state arrived (queued; applied on this service's thread)."""
        if not topic.startswith(self.prefix):
            return False
        try:
            self._inbox.put_nowait((topic, payload))
        except queue.Full:
            logger.warning("member sync is behind: a member state was dropped (the retained copy stays)")
        return True

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                topic, payload = self._inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.apply(topic, payload)
            except (SyncError, GalleryError, GalleryKeyError) as exc:
                self.stats.refused += 1
                logger.warning("member state on %s not applied: %s", topic, exc)

    def apply(self, topic: str, payload: bytes) -> str:
        """Apply one member state (or the store's manifest); returns what happened (for logs and tests)."""
        if not payload:
            return "cleared"  # the hub removed a settled erasure
        if len(payload) > MAX_STATE_BYTES:
            raise SyncError(f"member state of {len(payload)} bytes (limit {MAX_STATE_BYTES})")
        check, body = check_hub_signature(self._hub_keys, topic, payload)
        if check is not AckCheck.OK:
            raise SyncError(f"member state refused: {check.value} (only the hub's signed states are imported)")
        try:
            state: dict[str, Any] = json.loads(body)
            name = topic.rsplit("/", 1)[-1]
            if name == MANIFEST:
                members = {str(ref): int(v) for ref, v in dict(state["members"]).items()}
                self.journal.set_manifest(int(state["version"]), members)
                return "manifest"
            ref, version = str(state["member_ref"]), int(state["version"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SyncError(f"member state is malformed ({type(exc).__name__}: {exc})") from None
        if name != ref:
            raise SyncError("member state names another member than its topic")
        if version <= self.journal.imported_version(ref):
            return "already"
        with self._gallery() as gallery:
            erased = bool(state.get("erased"))
            outcome = self._erase(gallery, ref) if erased else self._enrol(gallery, state)
        self.journal.mark_imported(ref, version)
        return outcome

    def _enrol(self, gallery: Gallery | None, state: dict[str, Any]) -> str:
        """The store's state of one member: their consent, the templates made by this terminal's embedder (the
        state holds them per embedder) and their cards, replacing what this terminal held for them."""
        try:
            member_id, ref = str(state["member_id"]), str(state["member_ref"])
            c = state.get("consent")  # None for a member known by card only
            consent = None if c is None else Consent(
                str(c["reference"]), str(c["scope"]), float(c["granted_at"]), c.get("expires_at"),
                bool(c["guardian"]), str(c["coverage"]),
            )  # fmt: skip
            cards = [str(h) for h in state.get("cards", [])]
            by_model: dict[str, list[dict[str, str]]] = dict(state.get("templates", {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise SyncError(f"member state is malformed ({type(exc).__name__}: {exc})") from None
        if member_ref(self.recorder.store_id, member_id) != ref:
            raise SyncError("member state: member_ref does not match its member")
        if consent is not None and consent.coverage not in ("store", "chain"):
            raise SyncError(f"member state with consent coverage {consent.coverage!r} is not shared")
        if consent is None and by_model:
            raise SyncError("member state carries templates without a consent record")
        self.journal.set_cards(ref, member_id, cards)
        if gallery is None:
            return "cards"  # no face recognition on this terminal: nothing to match templates against
        sealed = by_model.get(gallery.model)
        if not sealed or consent is None:
            if by_model:
                logger.warning("shared member has templates of %s only, this terminal uses %s: cards and consent "
                               "only", ", ".join(by_model), gallery.model)  # fmt: skip
            return "cards"
        vectors = open_templates(self._key, self.recorder.store_id, member_id, gallery.model, sealed)
        gallery.replace_member(member_id, vectors, consent, origin="store")
        self.stats.imported += 1
        logger.info("shared member imported (%d templates, version %s)", len(vectors), state.get("version"))
        return "enrolled"

    def _erase(self, gallery: Gallery | None, ref: str) -> str:
        member_id = self.journal.member_of(ref)
        self.journal.set_cards(ref, None, [])
        for info in gallery.members() if gallery is not None else []:
            if member_ref(self.recorder.store_id, info.member_id) == ref:
                erase_member(gallery, info.member_id, reason="erased in the store", announce=False)
                self.stats.erased += 1
                return "erased"
        if member_id is not None:  # a card-only member here: their queued events go all the same
            erase_member(gallery, member_id, reason="erased in the store", announce=False)
            self.stats.erased += 1
            return "erased"
        return "not here"

    def health(self) -> dict[str, int]:
        """For health: the store's manifest version, members not yet in step, announcements waiting, refusals."""
        return {**self.journal.progress(), "imported": self.stats.imported, "refused": self.stats.refused}

    @contextmanager
    def _gallery(self) -> Any:
        shared = self._shared_gallery()
        if shared is not None:
            yield shared
            return
        gallery = self._open_gallery()
        try:
            yield gallery
        finally:
            if gallery is not None:
                gallery.close()


def open_recorder(config: StoreConfig, state_dir: Path) -> tuple[SyncRecorder, bytes] | None:
    """The recorder enrolments and erasures write to (and the store key) where ``identity.sync`` is on, else None.
    The daemon and the ``members`` CLI both use it, so an enrolment made with the daemon down is announced later."""
    settings = config.identity.sync
    if not settings.enabled:
        return None
    try:
        key = load_store_key(settings.store_key_env, None if settings.store_key_env else settings.store_key_credential)
    except SyncError as exc:
        raise AgentError(f"identity.sync: {exc}") from None
    journal = SyncJournal(state_dir / "identity" / JOURNAL_FILE)
    egress = config.privacy.egress.biometric_templates
    return SyncRecorder(journal, config.store.id, config.terminal.id, key, egress), key
