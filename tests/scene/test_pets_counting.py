"""Line counting and tracking on the real PETS2009 clip against our committed hand annotation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.pipelines.people.events import PersonEntered, PersonExited
from tests.scene.helpers import frame, pipeline

ANNOTATION = Path(__file__).with_name("data") / "pets2009_line.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def truth() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ANNOTATION.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def crossings(pets_frames: list[Any], detector: Any, truth: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(frame, direction, track id) of every crossing the pipeline reports, detection every other frame."""
    line = truth["line"]
    p = pipeline("pets", {"detect_every": 2, "scenes": {"pets": {"normalized": False, "lines": [line]}}}, detector)
    out = []
    for i, image in enumerate(pets_frames):
        for e in p.process(frame("pets", i, image)):
            if isinstance(e, PersonEntered | PersonExited):
                out.append((i, "in" if isinstance(e, PersonEntered) else "out", e.track_id))
    return out


@pytest.mark.parametrize("direction", ["in", "out"])
def test_counts_within_ten_percent_of_annotation(
    crossings: list[tuple[int, str, str]], truth: dict[str, Any], direction: str
) -> None:
    expected = sum(1 for c in truth["crossings"] if c["direction"] == direction)
    counted = sum(1 for c in crossings if c[1] == direction)
    print(f"PETS2009 line {direction}: counted {counted}, annotated {expected}")
    assert abs(counted - expected) <= 0.1 * expected


def test_each_crossing_matches_an_annotated_one_in_time(
    crossings: list[tuple[int, str, str]], truth: dict[str, Any]
) -> None:
    unmatched = list(truth["crossings"])
    for f, direction, _ in crossings:
        hit = next((c for c in unmatched if c["direction"] == direction and abs(c["frame"] - f) <= 8), None)
        assert hit is not None, f"crossing {direction} at frame {f} is not in the annotation"
        unmatched.remove(hit)
    assert len(unmatched) <= 1, f"missed crossings: {unmatched}"


def test_identity_swaps_at_the_line_are_bounded(crossings: list[tuple[int, str, str]], truth: dict[str, Any]) -> None:
    """An ID switch shows as one track id carrying crossings of two annotated people."""
    people_by_track: dict[str, set[str]] = {}
    for f, direction, track in crossings:
        hit = min(truth["crossings"], key=lambda c: abs(c["frame"] - f) + (0 if c["direction"] == direction else 99))
        people_by_track.setdefault(track, set()).add(hit["person"])
    swaps = sum(len(people) - 1 for people in people_by_track.values())
    fragments = len(people_by_track) - len({c["person"] for c in truth["crossings"]})
    print(
        f"PETS2009 line: {swaps} identity swap(s), {fragments:+d} extra track ids "
        f"for {len(truth['crossings'])} crossings"
    )
    assert swaps <= 2
