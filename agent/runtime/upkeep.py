"""Periodic upkeep of the member data: consent expiry and the audit chain, on a timer, in its own thread.

Consent expiry was checked only when the face pipeline started, so a terminal that ran for months kept members
whose consent had ended. Every ``identity.upkeep_interval_s`` (hourly by default) this erases each member whose
consent has expired through the same path as a request (gallery, queued events, audit redaction, the store's
other terminals), then verifies the audit chain and keeps its head (sequence number and MAC) for ``health``. A
hub that remembers the head sees a chain that was cut short (its newest entries deleted: the chain left still
verifies) as a sequence number that went back (``agent.delivery.monitor`` says so).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent import clock
from agent.events import iso_time
from agent.identity.audit import AuditBroken
from agent.identity.enrollment import enforce_retention
from agent.identity.gallery import Gallery, GalleryError
from agent.identity.keys import GalleryKeyError

logger = logging.getLogger(__name__)

#: How much of the head's MAC health carries: enough to tell two heads apart, not a key to anything.
MAC_PREFIX = 16

#: Gives the gallery to look after and whether upkeep must close it (False: the face pipeline's own), or None.
GalleryLease = Callable[[], tuple[Gallery, bool] | None]


@dataclass
class AuditState:
    ok: bool
    head_seq: int
    head_mac: str
    checked_at: float
    error: str | None = None


class Upkeep:
    """Runs :meth:`run_once` now and then every ``interval_s`` until ``stop`` is set."""

    def __init__(self, interval_s: float, gallery: GalleryLease, stop: threading.Event) -> None:
        self.interval_s = interval_s
        self._gallery = gallery
        self._stop = stop
        self._lock = threading.Lock()
        self.audit: AuditState | None = None
        self.consent_expired = 0
        self.runs = 0
        self.thread = threading.Thread(target=self._loop, name="upkeep", daemon=True)

    def start(self) -> Upkeep:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # upkeep must not die: the next round tries again
                logger.exception("upkeep failed; trying again in %.0f s", self.interval_s)
            self._stop.wait(self.interval_s)

    def run_once(self, now: float | None = None) -> AuditState | None:
        """Erase members whose consent expired, then verify the audit chain; the chain's state (None: no gallery)."""
        try:
            lease = self._gallery()
        except (GalleryError, GalleryKeyError) as exc:
            logger.error("upkeep: the gallery cannot be opened: %s", exc)
            return None
        if lease is None:
            return None
        gallery, owned = lease
        try:
            expired = enforce_retention(gallery, now)
            if expired:
                logger.info("upkeep: erased %d member(s) whose consent expired", len(expired))
            try:
                head = gallery.audit_head()
                state = AuditState(True, head.seq, head.mac, clock.now())
            except AuditBroken as exc:
                logger.error("upkeep: %s", exc)
                head = gallery.audit_head(verify=False)
                state = AuditState(False, head.seq, head.mac, clock.now(), str(exc))
        finally:
            if owned:
                gallery.close()
        with self._lock:
            self.consent_expired += len(expired)
            self.audit = state
            self.runs += 1
        return state

    def health(self) -> dict[str, Any] | None:
        """The ``audit`` member of health: None until the first round found a gallery."""
        with self._lock:
            state = self.audit
            if state is None:
                return None
            return {
                "ok": state.ok,
                "head_seq": state.head_seq,
                "head_mac": state.head_mac[:MAC_PREFIX],
                "checked_at": iso_time(state.checked_at),
                "error": state.error,
                "consent_expired": self.consent_expired,
            }
