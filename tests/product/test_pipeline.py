"""The product pipeline on real photos and video: voting, unknowns, barcode tie-in, interest events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from itertools import count
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.config.loader import parse_config
from agent.events import EventBody, EventStamper
from agent.pipelines.product.events import ProductInterest, ProductMismatch, ProductRecognized
from agent.pipelines.product.settings import ProductSettings
from agent.pipelines.product.stage import ProductCameraStage, ProductScannerStage, build
from agent.pipelines.tracks import PersonTrack, TrackInbox
from agent.runtime.wiring import build_shared
from agent.schemas import validate_payload
from drivers.base import Capture, Frame, SerialRead
from tests.conftest import require_data
from tests.media import config_text
from tests.product.conftest import all_skus, barcode_for, make_catalog

T0 = 1_700_000_000.0
SEEN = "Arla-Ecological-Medium-Fat-Milk"
OTHER = "Alpro-Vanilla-Soyghurt"
NOT_LISTED = "Tropicana-Apple-Juice"


def shelf(products_dir: Path, sku: str) -> list[Path]:
    return sorted((products_dir / "shelf" / sku).glob("*.jpg"))


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory, products_dir: Path, models_dir: Path) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("pipeline")
    skus = all_skus(products_dir)[:8]
    assert SEEN in skus and OTHER in skus and NOT_LISTED not in skus
    make_catalog(tmp / "catalog", products_dir, skus, {s: shelf(products_dir, s)[:5] for s in skus})
    video = require_data("media/video/vtest_pets2009_480x360.avi")
    text = config_text(
        tmp,
        f"""\
models: {{directory: {models_dir}}}
cameras:
  - {{name: counter, type: image-folder, path: {products_dir / "shelf" / SEEN}}}
  - {{name: aisle, type: video-file, path: {video}}}
pipelines:
  product:
    enabled: true
    catalog_dir: {tmp / "catalog"}
    fps: 30
    interest_dwell_s: 1.0
    zones:
      - {{name: till, camera: counter, kind: counter}}
      - {{name: dairy-shelf, camera: aisle, kind: shelf, box: [0.0, 0.3, 1.0, 1.0]}}
""",
    )
    config = parse_config(text, base_dir=tmp)
    with ExitStack() as stack:
        shared = build_shared(config, stack)
        built = build(config.pipelines.settings(ProductSettings), shared)
        for stage in built:
            stage.warm_up()
        by_source = {stage.source: stage for stage in built}
        service = by_source["counter"].service  # type: ignore[attr-defined]
        yield {"counter": by_source["counter"], "aisle": by_source["aisle"], "service": service, "inbox": shared.tracks}


def frame(source: str, image: Any, t: float, seq: int = 0) -> Frame:
    return Frame(source=source, capture=Capture(seq=seq, mono_ns=int(t * 1e9), wall_time=t), image=image)


def validate(events: list[EventBody]) -> None:
    seq = count(1)
    stamper = EventStamper("test-store", "t1", lambda: next(seq))
    for body in events:
        validate_payload(stamper.stamp(body).to_payload())


def test_counter_votes_then_reports_once_and_a_held_product_is_interest(
    stages: dict[str, Any], products_dir: Path
) -> None:
    counter: ProductCameraStage = stages["counter"]
    events: list[EventBody] = []
    photos = shelf(products_dir, SEEN)[5:10]
    for i, photo in enumerate(photos * 2):  # ten frames over 4.5 s of the same product held up
        events += counter.process(frame("counter", cv2.imread(str(photo)), T0 + 0.5 * i, i))
    validate(events)
    recognized = [e for e in events if isinstance(e, ProductRecognized)]
    assert [e.sku for e in recognized] == [SEEN]  # announced once, not once per frame
    first = recognized[0]
    assert first.method == "vision" and first.zone == "till" and first.votes is not None and first.votes >= 3
    assert first.top[0].sku == SEEN and len(first.top) == 5 and first.score >= 0.6
    interest = [e for e in events if isinstance(e, ProductInterest)]
    assert len(interest) == 1 and interest[0].trigger == "held" and interest[0].sku == SEEN
    assert interest[0].dwell_s >= 1.0


def test_a_product_outside_the_catalogue_stays_unknown(stages: dict[str, Any], products_dir: Path) -> None:
    counter: ProductCameraStage = stages["counter"]
    events: list[EventBody] = []
    for i, photo in enumerate(shelf(products_dir, NOT_LISTED)[:8]):
        events += counter.process(frame("counter", cv2.imread(str(photo)), T0 + 100 + 0.5 * i, i))
    assert [e for e in events if isinstance(e, ProductRecognized)] == []


def test_barcode_maps_to_a_sku_and_a_mismatch_is_its_own_event(stages: dict[str, Any], products_dir: Path) -> None:
    counter: ProductCameraStage = stages["counter"]
    scanner = ProductScannerStage("scanner", stages["service"])
    skus = all_skus(products_dir)[:8]
    t = T0 + 200.0

    def scan(code: str, at: float) -> list[EventBody]:
        read = SerialRead(source="scanner", capture=Capture(1, int(at * 1e9), at), kind="barcode", value=code)
        return list(scanner.process(read))

    matching = scan(barcode_for(skus.index(SEEN)), t)
    assert [(e.sku, e.method) for e in matching if isinstance(e, ProductRecognized)] == [(SEEN, "barcode")]
    swapped = scan(barcode_for(skus.index(OTHER)), t + 0.5)
    unknown_code = scan("9999999999994", t + 0.7)
    events: list[EventBody] = []
    for i, photo in enumerate(shelf(products_dir, SEEN)[5:10]):
        events += counter.process(frame("counter", cv2.imread(str(photo)), t + 1 + 0.5 * i, i))
    events += counter.process(frame("counter", cv2.imread(str(shelf(products_dir, SEEN)[5])), t + 7, 9))
    mismatches = [e for e in events if isinstance(e, ProductMismatch)]
    validate([*matching, *swapped, *unknown_code, *events])
    assert sorted((m.scanned_sku or "", m.code) for m in mismatches) == sorted(
        [(OTHER, barcode_for(skus.index(OTHER))), ("", "9999999999994")]
    )
    assert all(m.seen_sku == SEEN and m.camera == "counter" and m.zone == "till" for m in mismatches)


def test_shelf_interest_from_activity_then_from_offered_tracks(stages: dict[str, Any]) -> None:
    aisle: ProductCameraStage = stages["aisle"]
    video = cv2.VideoCapture(str(require_data("media/video/vtest_pets2009_480x360.avi")))
    events: list[EventBody] = []
    t = T0 + 300.0
    for i in range(40):  # 4 s of pedestrians at 10 fps, no people pipeline: activity stands in
        ok, image = video.read()
        assert ok
        events += aisle.process(frame("aisle", image, t + i / 10, i))
    activity = [e for e in events if isinstance(e, ProductInterest)]
    assert [e.trigger for e in activity] == ["shelf_activity"] and activity[0].track_id is None
    assert activity[0].dwell_s >= 1.0 and activity[0].zone == "dairy-shelf"

    inbox: TrackInbox = stages["inbox"]
    standing = PersonTrack(track_id="a1b2", box=(0.40, 0.35, 0.55, 0.95))
    passing = PersonTrack(track_id="c3d4", box=(0.10, 0.0, 0.20, 0.25))  # above the shelf zone
    tracked: list[EventBody] = []
    for i in range(30):
        ok, image = video.read()
        assert ok
        now = t + 10 + i / 10
        inbox.offer_tracks("aisle", now, [standing, passing])
        tracked += aisle.process(frame("aisle", image, now, 100 + i))
    validate([*activity, *tracked])
    interest = [e for e in tracked if isinstance(e, ProductInterest)]
    assert [(e.trigger, e.track_id) for e in interest] == [("shelf_dwell", "a1b2")]
    assert interest[0].dwell_s >= 1.0


@pytest.mark.slow
def test_hand_regions_from_a_real_tracker_and_pose_on_real_frames(stages: dict[str, Any], models_dir: Path) -> None:
    """YOLOX-nano + ByteTracker + MoveNet (the people pipeline's models) on PETS 2009 drive the hand path.

    The pedestrians carry no catalogued product, so the hand regions are searched,
    voted per track, and nothing is recognised: unknown stays unknown.
    """
    from agent.pipelines.people.tracker import ByteTracker, TrackState
    from agent.pipelines.tracks import person_track
    from models.people import PersonDetector, PoseEstimator
    from models.runtime import session_for

    detector = PersonDetector(session_for("yolox-nano", models_dir))
    pose = PoseEstimator(session_for("movenet-lightning", models_dir))
    tracker = ByteTracker()
    aisle: ProductCameraStage = stages["aisle"]
    inbox: TrackInbox = stages["inbox"]
    video = cv2.VideoCapture(str(require_data("media/video/vtest_pets2009_480x360.avi")))
    events: list[EventBody] = []
    hands_offered = 0
    tracked_ids: set[str] = set()
    t = T0 + 600.0
    for i in range(24):
        ok, image = video.read()
        assert ok
        now = t + i / 10
        height, width = image.shape[:2]
        offered = []
        for track in tracker.update(detector.detect(image)):
            if track.state != TrackState.TRACKED:
                continue
            keypoints = pose.estimate(image, track.box)
            offered.append(
                person_track(f"p{track.track_id}", track.box, keypoints.xy, keypoints.score, (width, height))
            )
        hands_offered += sum(len(p.hands) for p in offered)
        tracked_ids |= {p.track_id for p in offered if p.hands}
        inbox.offer_tracks("aisle", now, offered)
        events += aisle.process(frame("aisle", image, now, 200 + i))
    validate(events)
    print(f"\nreal tracker: {len(tracked_ids)} tracks with wrists, {hands_offered} hand regions searched in 24 frames")
    assert len(tracked_ids) >= 2 and hands_offered >= 20
    assert tracked_ids <= set(aisle.hand_voters)  # every track with a hand got its own vote
    assert all(0.0 <= v <= 1.0 for p in offered for v in (*p.box, *(c for h in p.hands for c in h)))
    assert not [e for e in events if isinstance(e, ProductRecognized)]
    # Voters of tracks that stopped voting are dropped once their votes aged out and a repeat would be new anyway.
    later = now + max(aisle.settings.repeat_after_s, 2.0) + 1.0
    inbox.offer_tracks("aisle", later, [])
    aisle.process(frame("aisle", image, later, 300))
    assert aisle.hand_voters == {}


# --- each pipelines.product setting changing what the pipeline reports --------------------------------------


def counter_run(
    stages: dict[str, Any], products_dir: Path, plan: list[str | None], t0: float, step: float = 0.5, **changes: Any
) -> list[EventBody]:
    """A counter stage with the fixture's settings changed by ``changes`` (same catalogue and models), shown one
    frame per ``step`` s: a shelf photo of the product (cycling through five) for each SEEN, a bare counter for None."""
    base: ProductCameraStage = stages["counter"]
    stage = ProductCameraStage("counter", base.settings.model_copy(update=changes), stages["service"])
    photos = [cv2.imread(str(p)) for p in shelf(products_dir, SEEN)[5:10]]
    empty = np.full_like(photos[0], 200)
    events: list[EventBody] = []
    for i, what in enumerate(plan):
        image = photos[i % len(photos)] if what == SEEN else empty
        events += stage.process(frame("counter", image, t0 + step * i, i))
    return events


def recognized(events: list[EventBody]) -> list[ProductRecognized]:
    return [e for e in events if isinstance(e, ProductRecognized)]


def test_vote_settings_decide_when_a_product_is_recognised(stages: dict[str, Any], products_dir: Path) -> None:
    """``vote_min`` agreeing frames among the last ``vote_frames`` make a recognition."""
    held = [SEEN] * 6
    for vote_min in (2, 4):
        (event,) = recognized(counter_run(stages, products_dir, held, T0 + 1000 * vote_min, vote_min=vote_min))
        assert event.votes == vote_min and event.captured_at == T0 + 1000 * vote_min + 0.5 * (vote_min - 1)
    interrupted = [SEEN, SEEN, None, SEEN, None, SEEN]  # never three in a row
    assert [e.votes for e in recognized(counter_run(stages, products_dir, interrupted, T0 + 5000, vote_frames=5))] == [
        3
    ]
    assert recognized(counter_run(stages, products_dir, interrupted, T0 + 6000, vote_frames=3)) == []


def test_score_margin_and_cosine_thresholds_keep_doubtful_frames_unknown(
    stages: dict[str, Any], products_dir: Path
) -> None:
    """``min_score`` (whitened cosine), ``min_margin`` (over the runner-up) and ``min_cosine`` (plain cosine):
    raised past what these frames reach, the same product stays unknown."""
    held = [SEEN] * 5
    (event,) = recognized(counter_run(stages, products_dir, held, T0 + 7000))
    assert event.sku == SEEN and event.score < 0.999 and event.margin is not None and event.margin < 1.5
    assert recognized(counter_run(stages, products_dir, held, T0 + 8000, min_score=0.999)) == []
    assert recognized(counter_run(stages, products_dir, held, T0 + 9000, min_margin=1.5)) == []
    assert recognized(counter_run(stages, products_dir, held, T0 + 10000, min_cosine=0.99)) == []


def test_top_k_is_how_many_candidates_an_event_lists(stages: dict[str, Any], products_dir: Path) -> None:
    for k in (1, 3, 7):
        (event,) = recognized(counter_run(stages, products_dir, [SEEN] * 4, T0 + 11000 + k * 100, top_k=k))
        assert len(event.top) == k and event.top[0].sku == SEEN


def test_repeat_after_s_is_when_the_same_product_is_announced_again(stages: dict[str, Any], products_dir: Path) -> None:
    """Shown, taken away for 8 s, shown again: one announcement with 30 s, two with 5 s."""
    plan: list[str | None] = [SEEN] * 4 + [None] * 16 + [SEEN] * 4
    assert len(recognized(counter_run(stages, products_dir, plan, T0 + 12000, repeat_after_s=30.0))) == 1
    assert len(recognized(counter_run(stages, products_dir, plan, T0 + 13000, repeat_after_s=5.0))) == 2


def test_fps_is_how_often_a_zone_is_looked_at(stages: dict[str, Any], products_dir: Path) -> None:
    """Frames at 10 fps: at ``fps`` 10 every one is searched and three votes come after 0.2 s; at 1 only one
    frame a second is, so they take 2 s."""
    plan: list[str | None] = [SEEN] * 30
    fast = recognized(counter_run(stages, products_dir, plan, T0 + 14000, step=0.1, fps=10.0))
    slow = recognized(counter_run(stages, products_dir, plan, T0 + 15000, step=0.1, fps=1.0))
    assert fast[0].captured_at - (T0 + 14000) == pytest.approx(0.2)
    assert slow[0].captured_at - (T0 + 15000) == pytest.approx(2.0)


def test_interest_dwell_s_is_how_long_a_held_product_takes_to_be_interest(
    stages: dict[str, Any], products_dir: Path
) -> None:
    held: list[str | None] = [SEEN] * 12  # 5.5 s
    for dwell in (1.0, 4.0):
        events = counter_run(stages, products_dir, held, T0 + 16000 + dwell * 100, interest_dwell_s=dwell)
        (interest,) = [e for e in events if isinstance(e, ProductInterest)]
        first = recognized(events)[0].captured_at
        assert interest.trigger == "held" and dwell <= interest.dwell_s < dwell + 0.6
        assert interest.captured_at - first == pytest.approx(interest.dwell_s)


def test_mismatch_window_s_is_how_far_apart_a_scan_and_a_sighting_are_compared(
    stages: dict[str, Any], products_dir: Path
) -> None:
    """A scan of another product 2.5 s before the camera recognises SEEN: a mismatch with a 5 s window,
    unrelated with a 2 s one."""
    from agent.pipelines.product.stage import ProductService

    service = stages["service"]
    skus = all_skus(products_dir)[:8]
    found = {}
    for window in (5.0, 2.0):
        settings = stages["counter"].settings.model_copy(update={"mismatch_window_s": window})
        variant = ProductService(settings, service.models, service.state_dir, None)
        variant.embedder, variant.built = service.ensure_ready()  # the same models and catalogue, a new ledger
        counter = ProductCameraStage("counter", settings, variant)
        scanner = ProductScannerStage("scanner", variant)
        t = T0 + 20000 + window * 100
        read = SerialRead(
            source="scanner", capture=Capture(1, int(t * 1e9), t), kind="barcode", value=barcode_for(skus.index(OTHER))
        )
        events = list(scanner.process(read))
        photos = shelf(products_dir, SEEN)[5:10]
        for i in range(12):  # frames every 0.5 s from t + 1.5: the third vote, at t + 2.5, recognises SEEN
            events += counter.process(frame("counter", cv2.imread(str(photos[i % 5])), t + 1.5 + 0.5 * i, i))
        found[window] = [(e.scanned_sku, e.seen_sku) for e in events if isinstance(e, ProductMismatch)]
    assert found == {5.0: [(OTHER, SEEN)], 2.0: []}


def test_catalogue_settings_decide_what_is_searched(tmp_path: Path, products_dir: Path, models_dir: Path) -> None:
    """``catalog_dir`` is what the index holds, ``cache_dir`` where its embeddings are kept (default under
    ``storage.state_dir``), ``whitening`` whether a projection is fitted on the shelf photos, ``views``,
    ``centre_crop`` and ``input_size`` how each photo is embedded."""
    from agent.pipelines.product.stage import ProductService
    from agent.pipelines.shared import ModelOptions

    skus = all_skus(products_dir)[:3]
    catalog = make_catalog(tmp_path / "catalog", products_dir, skus, {s: shelf(products_dir, s)[:3] for s in skus})
    models = ModelOptions(models_dir, ("CPUExecutionProvider",), 2)

    def service(**settings: Any) -> ProductService:
        made = ProductService(
            ProductSettings(enabled=True, catalog_dir=catalog, **settings), models, tmp_path / "state", None
        )
        made.ensure_ready()
        return made

    plain = service()
    assert plain.built is not None and set(plain.built.index.skus) == set(skus)
    assert (tmp_path / "state" / "catalog" / "embeddings.npz").is_file()
    assert plain.built.index.whitening is not None and plain.built.index.whitening.dim == len(skus) - 1
    cached = service(cache_dir=tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "embeddings.npz").is_file() and cached.built is not None
    assert cached.built.stats.cached == 0  # a new cache: every photo embedded there
    unwhitened = service(whitening=False)
    assert unwhitened.built is not None and unwhitened.built.index.whitening is None
    photo = cv2.imread(str(shelf(products_dir, skus[0])[4]))  # not a reference
    single = plain.embedder.embed([photo])[0]  # type: ignore[union-attr]
    for changed in (service(views="multi"), service(centre_crop=0.9), service(input_size=224)):
        assert changed.embedder is not None and changed.embedder.version != plain.embedder.version  # type: ignore[union-attr]
        assert 0.5 < float(changed.embedder.embed([photo])[0] @ single) < 0.999
