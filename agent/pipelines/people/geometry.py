"""Zones and directed lines: config values turned into pixel geometry, and the tests on them.

Coordinates in the config are pixels, or fractions of the frame when every
value is within 0..1 and ``normalized`` is true; they are resolved once per
frame size so the same config works at any resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]


def resolve_points(
    points: Sequence[Sequence[float]], normalized: bool, width: int, height: int, where: str
) -> list[Point]:
    """Config points to pixels; raises naming ``where`` when a point is malformed or outside the frame."""
    out: list[Point] = []
    for i, p in enumerate(points):
        if len(p) != 2:
            raise ValueError(f"{where}[{i}]: a point is [x, y], got {list(p)}")
        x, y = float(p[0]), float(p[1])
        if normalized:
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise ValueError(f"{where}[{i}]: normalised coordinates must lie in 0..1, got {list(p)}")
            x, y = x * width, y * height
        elif not (0 <= x <= width and 0 <= y <= height):
            raise ValueError(f"{where}[{i}]: point {list(p)} is outside the {width}x{height} frame")
        out.append((x, y))
    return out


def point_in_polygon(p: Point, polygon: Sequence[Point]) -> bool:
    """Even-odd ray casting; points on an edge may fall either way (hysteresis absorbs that)."""
    x, y = p
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
    return inside


def polygon_depth(p: Point, polygon: Sequence[Point]) -> float:
    """Distance from ``p`` to the polygon's boundary: positive inside, negative outside."""
    best = float("inf")
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        dx, dy = x2 - x1, y2 - y1
        length2 = dx * dx + dy * dy
        u = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - x1) * dx + (p[1] - y1) * dy) / length2))
        best = min(best, ((p[0] - x1 - u * dx) ** 2 + (p[1] - y1 - u * dy) ** 2) ** 0.5)
    return best if point_in_polygon(p, polygon) else -best


def signed_distance(p: Point, a: Point, b: Point) -> float:
    """Distance of ``p`` from the infinite line a→b: positive on the right of a→b in image coordinates.

    Image y grows downwards, so "right" is as seen on screen when looking from a to b.
    """
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = (dx * dx + dy * dy) ** 0.5
    if length == 0:
        raise ValueError(f"line from {a} to {b} has zero length")
    return float((dx * (p[1] - a[1]) - dy * (p[0] - a[0])) / length)


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point, slack: float = 0.0) -> bool:
    """Whether segment p1p2 meets segment q1q2 (q extended by ``slack`` pixels at both ends)."""
    if slack:
        dx, dy = q2[0] - q1[0], q2[1] - q1[1]
        length = (dx * dx + dy * dy) ** 0.5 or 1.0
        ux, uy = dx / length * slack, dy / length * slack
        q1, q2 = (q1[0] - ux, q1[1] - uy), (q2[0] + ux, q2[1] + uy)

    def orient(a: Point, b: Point, c: Point) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return (d1 * d2 <= 0) and (d3 * d4 <= 0) and not (d1 == d2 == 0)


@dataclass(frozen=True)
class ZoneGeometry:
    name: str
    polygon: list[Point]
    queue: bool


@dataclass(frozen=True)
class LineGeometry:
    """A directed line: crossing from the left of a→b to its right (as seen on screen) is ``in``."""

    name: str
    a: Point
    b: Point
    invert: bool
