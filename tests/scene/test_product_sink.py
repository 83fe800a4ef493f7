"""The people pipeline feeds the product pipeline: real tracks from the real tracker on real PETS frames.

Both pipelines are built by their own ``build`` from one config and the runtime's shared services, people
first, then run frame by frame: the link between them (the track inbox) exists before either is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config.loader import parse_config
from agent.events import EventBody
from agent.pipelines.people.settings import PeopleSettings
from agent.pipelines.people.stage import PeopleStage
from agent.pipelines.people.stage import build as build_people
from agent.pipelines.product.events import ProductInterest
from agent.pipelines.product.settings import ProductSettings
from agent.pipelines.product.stage import build as build_product
from agent.pipelines.tracks import PersonTrack
from agent.runtime.wiring import build_shared
from tests.conftest import require_data
from tests.media import config_text
from tests.product.conftest import all_skus, make_catalog
from tests.scene.helpers import frame

START, IDENTIFY, END = 150, 160, 200  # PETS frames at 10 fps: 5 s of pedestrians
MEMBER = "member-7"


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, pets_frames: list[np.ndarray]
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("sink")
    products = require_data("media/products")
    make_catalog(tmp / "catalog", products, all_skus(products)[:2])
    video = require_data("media/video/vtest_pets2009_480x360.avi")
    text = config_text(
        tmp,
        f"""\
models: {{directory: {models_dir}}}
cameras:
  - {{name: aisle, type: video-file, path: {video}}}
pipelines:
  people:
    enabled: true
    reid_every: 1
  product:
    enabled: true
    catalog_dir: {tmp / "catalog"}
    fps: 2
    interest_dwell_s: 2.0
    zones:
      - {{name: walkway, camera: aisle, kind: shelf, box: [0.0, 0.0, 1.0, 1.0]}}
""",
    )
    config = parse_config(text, base_dir=tmp)
    stack = ExitStack()
    shared = build_shared(config, stack)
    (people,) = build_people(config.pipelines.settings(PeopleSettings), shared)
    assert isinstance(people, PeopleStage)
    (product,) = build_product(config.pipelines.settings(ProductSettings), shared)
    product.warm_up()
    inbox = shared.tracks
    assert inbox is not None
    offered: list[tuple[int, float, tuple[PersonTrack, ...], dict[str, tuple[float, ...]]]] = []
    events: list[EventBody] = []
    member_key = None
    for i in range(START, END):
        f = frame("aisle", i, pets_frames[i])
        list(people.process(f))
        taken = inbox.take("aisle")
        if taken is not None:  # look at what was offered, then hand it on untouched
            boxes = {people.key(t): t.box for t in people.tracker.tracks}
            offered.append((i, taken[0], taken[1], boxes))
            inbox.offer_tracks("aisle", *taken)
        if i == IDENTIFY:
            track = max(people.tracker.active(), key=lambda t: (t.box[2] - t.box[0]) * (t.box[3] - t.box[1]))
            member_key = people.key(track)
            shared.identities.assign_identity("aisle", member_key, MEMBER, "face", 0.9)
        events += product.process(f)
    h, w = pets_frames[0].shape[:2]
    yield {"offered": offered, "events": events, "member": member_key, "size": (w, h)}
    stack.close()


def test_every_frame_offers_the_trackers_tracks_normalised(run: dict[str, Any]) -> None:
    offered = run["offered"]
    w, h = run["size"]
    assert [i for i, *_ in offered] == list(range(START, END))  # one offer per frame
    sizes = [len(tracks) for _, _, tracks, _ in offered]
    print(f"\ntracks offered per frame: median {np.median(sizes):.0f}, max {max(sizes)}")
    assert np.median(sizes) >= 3  # PETS has several pedestrians in view throughout
    for i, wall, tracks, boxes in offered:
        assert wall == frame("aisle", i, np.zeros((1, 1, 3), np.uint8)).capture.wall_time
        for t in tracks:
            x1, y1, x2, y2 = boxes[t.track_id]  # the people pipeline's own track id and box
            expected = (max(0.0, x1 / w), max(0.0, y1 / h), min(1.0, x2 / w), min(1.0, y2 / h))
            assert t.box == pytest.approx(expected, abs=1e-9)
            assert 0 <= t.box[0] < t.box[2] <= 1 and 0 <= t.box[1] < t.box[3] <= 1


def test_the_member_track_carries_its_id_and_wrists_from_pose(run: dict[str, Any]) -> None:
    after = [t for i, _, tracks, _ in run["offered"] if i > IDENTIFY for t in tracks if t.track_id == run["member"]]
    assert len(after) >= 20, "the identified track should stay tracked for most of the segment"
    assert all(t.member_id == MEMBER for t in after)
    with_hands = [t for t in after if t.hands]
    print(f"member track: {len(with_hands)}/{len(after)} frames with wrists")
    assert len(with_hands) >= len(after) // 2
    for t in with_hands:
        x1, y1, x2, y2 = t.box
        w, h = x2 - x1, y2 - y1
        for x, y in t.hands:  # a wrist lies on (or just beside) its person
            assert x1 - 0.3 * w <= x <= x2 + 0.3 * w and y1 - 0.1 * h <= y <= y2 + 0.1 * h
    others = [t for _, _, tracks, _ in run["offered"] for t in tracks if t.track_id != run["member"]]
    assert others and all(t.member_id is None and t.hands == () for t in others)  # no pose on anonymous people


def test_product_interest_comes_from_the_people_tracks(run: dict[str, Any]) -> None:
    interest = [e for e in run["events"] if isinstance(e, ProductInterest)]
    dwell = [e for e in interest if e.trigger == "shelf_dwell"]
    ids = {t.track_id for _, _, tracks, _ in run["offered"] for t in tracks}
    print(f"shelf_dwell interest from {len({e.track_id for e in dwell})} people tracks")
    assert not [e for e in interest if e.trigger == "shelf_activity"]  # tracks were on: no pixel-change fallback
    assert len({e.track_id for e in dwell}) >= 3 and all(e.track_id in ids for e in dwell)
    assert any(e.track_id == run["member"] and e.member_id == MEMBER for e in dwell)
