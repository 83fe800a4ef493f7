"""Barcode tie-in: compares each scan with what the counter cameras saw around the same time.

A scan is judged once: as soon as a sighting of the scanned SKU is recorded
within ``window_s`` of it (agreement, nothing to report), or when the window
after it has closed: if cameras saw only other products, a
:class:`ProductMismatch` names the sighting nearest in time. A scan nobody saw
is not a mismatch (the camera may simply not cover the scanner). Scanner and
camera stages run on different threads, so the ledger is locked.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from agent.pipelines.product.events import ProductMismatch


@dataclass(frozen=True)
class Sighting:
    camera: str
    zone: str
    sku: str
    score: float
    wall_time: float


@dataclass
class Scan:
    device: str
    code: str
    sku: str | None
    wall_time: float


class ScanLedger:
    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._sightings: deque[Sighting] = deque(maxlen=256)
        self._scans: list[Scan] = []
        self._now = 0.0
        self._lock = threading.Lock()

    def sighting(self, sighting: Sighting) -> list[ProductMismatch]:
        """Record a recognised product; returns the verdicts that became due."""
        with self._lock:
            self._sightings.append(sighting)
            self._scans = [s for s in self._scans if not self._agrees(s, sighting)]
            return self._due(sighting.wall_time)

    def scan(self, scan: Scan) -> list[ProductMismatch]:
        """Record a scan (``sku`` None when the barcode is not in the catalogue)."""
        with self._lock:
            if not any(self._agrees(scan, s) for s in self._sightings):
                self._scans.append(scan)
            return self._due(scan.wall_time)

    def tick(self, wall_time: float) -> list[ProductMismatch]:
        """Judge scans whose window has closed (called on every frame)."""
        with self._lock:
            return self._due(wall_time)

    def _agrees(self, scan: Scan, sighting: Sighting) -> bool:
        close = abs(scan.wall_time - sighting.wall_time) <= self.window_s
        return scan.sku is not None and scan.sku == sighting.sku and close

    def _due(self, wall_time: float) -> list[ProductMismatch]:
        self._now = max(self._now, wall_time)
        out: list[ProductMismatch] = []
        waiting: list[Scan] = []
        for scan in self._scans:
            if self._now - scan.wall_time <= self.window_s:
                waiting.append(scan)
                continue
            near = [s for s in self._sightings if abs(s.wall_time - scan.wall_time) <= self.window_s]
            if not near:
                continue
            seen = min(near, key=lambda s: abs(s.wall_time - scan.wall_time))
            out.append(
                ProductMismatch(
                    captured_at=scan.wall_time,
                    device=scan.device,
                    code=scan.code,
                    scanned_sku=scan.sku,
                    seen_sku=seen.sku,
                    seen_score=round(seen.score, 4),
                    camera=seen.camera,
                    zone=seen.zone,
                    seconds_apart=round(abs(seen.wall_time - scan.wall_time), 3),
                )
            )
        self._scans = waiting
        return out
