"""Events of the product pipeline: what was recognised, what drew interest, and scans that disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from agent.events import EventBody, Retention


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One of the top-k SKUs of a search, with its cosine similarity."""

    sku: str
    score: float


@dataclass(frozen=True, kw_only=True)
class ProductRecognized(EventBody):
    """A product was identified: by vision (voted over several frames) or by a barcode scan."""

    TYPE: ClassVar[str] = "product.recognized"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    sku: str
    name: str
    method: Literal["vision", "barcode"]
    score: float
    margin: float | None = None
    top: tuple[Candidate, ...] = ()
    votes: int | None = None
    camera: str | None = None
    zone: str | None = None
    device: str | None = None
    track_id: str | None = None
    member_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ProductInterest(EventBody):
    """Someone dwelled with a product: held in view of a counter zone, or standing at a shelf zone."""

    TYPE: ClassVar[str] = "product.interest"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    trigger: Literal["held", "shelf_dwell", "shelf_activity"]
    camera: str
    zone: str
    dwell_s: float
    sku: str | None = None
    track_id: str | None = None
    member_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ProductMismatch(EventBody):
    """A scanned barcode names a different product from the one a camera saw at the same time."""

    TYPE: ClassVar[str] = "product.mismatch"
    RETENTION: ClassVar[Retention] = Retention.NORMAL
    device: str
    code: str
    scanned_sku: str | None
    seen_sku: str
    seen_score: float
    camera: str
    zone: str
    seconds_apart: float
