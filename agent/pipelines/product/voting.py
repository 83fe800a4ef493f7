"""Multi-frame decisions for one zone: a product is recognised when enough recent frames agree.

A single frame is often wrong (motion blur, a hand over the label); several
frames agreeing is far more reliable. Each frame's search result is first
reduced to a SKU or "unknown" with the score and margin thresholds, so a
product outside the catalogue stays unknown however many frames see it.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from agent.catalog.index import SearchResult


@dataclass(frozen=True)
class Decision:
    """The zone's verdict after a frame: a newly recognised SKU, and/or a held-product dwell."""

    sku: str
    votes: int
    result: SearchResult
    new: bool
    held_for_s: float


class ZoneVoter:
    """Votes over the last ``frames`` frames of one zone; announces a SKU once per presence.

    A verdict needs ``min_votes`` agreeing frames including the latest one, and
    votes older than ``max_age_s`` are forgotten, so a product that has left
    cannot be re-announced by what is still in the window.
    """

    def __init__(
        self,
        min_score: float,
        min_margin: float,
        frames: int,
        min_votes: int,
        repeat_after_s: float,
        max_age_s: float = 5.0,
        min_cosine: float = -1.0,
    ) -> None:
        self.min_score = min_score
        self.min_cosine = min_cosine
        self.min_margin = min_margin
        self.max_age_s = max_age_s
        self.window: deque[tuple[str | None, SearchResult, float]] = deque(maxlen=frames)
        self.min_votes = min_votes
        self.repeat_after_s = repeat_after_s
        self.current: str | None = None
        self.current_since = 0.0
        self.last_seen: dict[str, float] = {}

    def add(self, result: SearchResult, wall_time: float) -> Decision | None:
        """Add one frame's search result; return the zone's verdict if a SKU holds the majority."""
        match = result.accepted(self.min_score, self.min_margin, self.min_cosine)
        while self.window and wall_time - self.window[0][2] > self.max_age_s:
            self.window.popleft()  # votes from before a gap in the frames say nothing about now
        latest = match.sku if match else None
        self.window.append((latest, result, wall_time))
        counts = Counter(sku for sku, _, _ in self.window if sku is not None)
        if not counts:
            self.current = None
            return None
        sku, votes = counts.most_common(1)[0]
        if votes < self.min_votes or latest != sku:
            if self.current is not None and counts.get(self.current, 0) == 0:
                self.current = None
            return None
        if sku != self.current:
            self.current = sku
            self.current_since = wall_time
        previous = self.last_seen.get(sku)
        new = previous is None or wall_time - previous > self.repeat_after_s
        self.last_seen[sku] = wall_time
        # latest == sku here, so the newest vote for it is this frame's result.
        return Decision(sku=sku, votes=votes, result=result, new=new, held_for_s=wall_time - self.current_since)
