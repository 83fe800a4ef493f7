"""Each ``pipelines.face`` setting changing what the face pipeline does, with the real models on real photos.

The gates and models are checked on one camera frame; the multi-frame decision through the face stage the
agent builds, against a gallery holding two enrolled members; the keys through the gallery they open.
Sessions are shared by every test (onnxruntime sessions are cached per process), so each variant costs only
its own frames.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from agent.config.loader import parse_config
from agent.identity.enrollment import enroll_files
from agent.identity.gallery import Consent, WrongGalleryKey
from agent.identity.keys import GalleryKeyError
from agent.pipelines.face.events import ShopperIdentified, SpoofSuspected, VisitorSeen
from agent.pipelines.face.resources import load_analyzer, open_gallery
from agent.pipelines.face.settings import FaceSettings
from agent.pipelines.face.stage import FaceStage
from agent.pipelines.shared import ModelOptions, Shared
from agent.runtime.wiring import build_shared
from drivers.base import Capture, Frame
from models.face.match import match
from tests.conftest import require_data, require_model
from tests.face.conftest import imread
from tests.face.test_face_wiring import as_camera_frame
from tests.media import config_text

FPS = 5.0


@pytest.fixture(scope="module")
def models(models_dir: Path) -> ModelOptions:
    require_model(models_dir, "antispoof_minifasnet_v2.onnx")
    return ModelOptions(models_dir, ("CPUExecutionProvider",), 1)


@pytest.fixture(scope="module")
def frames() -> dict[str, npt.NDArray[np.uint8]]:
    probe = require_data("media/faces/probe")
    return {
        "obama_a": as_camera_frame(imread(probe / "obama_a.jpg")),
        "obama_b": as_camera_frame(imread(probe / "obama_b.jpg")),
        "empty": np.full((480, 640, 3), 60, np.uint8),
    }


def reasons(settings: FaceSettings, models: ModelOptions, image: npt.NDArray[np.uint8]) -> list[str | None]:
    """The quality verdict of every face the analyzer built from ``settings`` finds (None: passed)."""
    return [o.quality.reason for o in load_analyzer(settings, models).analyse(image)]


def test_detection_settings_decide_which_faces_are_found(
    models: ModelOptions, frames: dict[str, npt.NDArray[np.uint8]]
) -> None:
    """``detection_threshold`` (YuNet scores this face 0.92), ``detection_max_side`` (a 72 px face in a
    1280x960 frame is lost when detection runs at 320 px), ``detector_model`` (the fixed-size 640 model or the
    dynamic one)."""
    image = frames["obama_a"]
    assert reasons(FaceSettings(detection_threshold=0.8), models, image) == [None]
    assert reasons(FaceSettings(detection_threshold=0.95), models, image) == []

    big = np.full((960, 1280, 3), 90, np.uint8)
    big[400:520, 600:760] = image[::4, ::4]
    assert reasons(FaceSettings(detection_max_side=320, min_face_px=16), models, big) == []
    assert reasons(FaceSettings(detection_max_side=640, min_face_px=16), models, big) == [None]

    fixed = load_analyzer(FaceSettings(detector_model="face_detection_yunet_2023mar"), models)
    dynamic = load_analyzer(FaceSettings(detector_model="face_detection_yunet_2023mar_dynamic"), models)
    assert not fixed.detector.dynamic and dynamic.detector.dynamic
    assert [o.quality.reason for o in fixed.analyse(image)] == [None]


def test_quality_gates(models: ModelOptions, frames: dict[str, npt.NDArray[np.uint8]]) -> None:
    """``min_face_px`` (this face is about 270 px), ``min_sharpness`` (Laplacian variance about 1,100) and
    ``max_yaw`` (turned 0.16 eye distances) refuse faces that miss them, naming why."""
    image = frames["obama_a"]
    assert reasons(FaceSettings(), models, image) == [None]
    (small,) = reasons(FaceSettings(min_face_px=400), models, image)
    (blurry,) = reasons(FaceSettings(min_sharpness=5000), models, image)
    (turned,) = reasons(FaceSettings(max_yaw=0.1), models, image)
    assert small is not None and small.startswith("face too small") and small.endswith("< 400 px)")
    assert blurry is not None and blurry.startswith("too blurry") and blurry.endswith("< 5000)")
    assert turned is not None and turned.startswith("head turned too far") and turned.endswith("limit 0.10)")


def test_embedder_decides_the_templates(models: ModelOptions, frames: dict[str, npt.NDArray[np.uint8]]) -> None:
    """``embedder``: SFace gives 128-d templates, MobileFaceNet 192-d (a gallery holds one model's templates)."""
    for embedder, dims in (("sface", 128), ("mobilefacenet", 192)):
        (face,) = load_analyzer(FaceSettings(embedder=embedder), models).analyse(frames["obama_a"])  # type: ignore[arg-type]
        assert face.embedding is not None and face.embedding.shape == (dims,)


@pytest.fixture(scope="module")
def door(models: ModelOptions, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Shared, FaceSettings]]:
    """The shared services of a terminal with face on, obama and biden enrolled from their enrolment photos."""
    tmp = tmp_path_factory.mktemp("face-settings")
    os.environ["TEST_FACE_SETTINGS_KEY"] = secrets.token_hex(32)
    body = (
        f"models: {{directory: {models.directory}}}\n"
        "cameras:\n  - {name: door, type: test-pattern}\n"
        "pipelines:\n  face: {enabled: true, key_env: TEST_FACE_SETTINGS_KEY, key_credential: null}\n"
    )
    config = parse_config(config_text(tmp, body), base_dir=tmp)
    settings = config.pipelines.settings(FaceSettings)
    with ExitStack() as stack:
        shared = build_shared(config, stack)
        assert shared.gallery is not None
        analyzer = load_analyzer(settings, models)
        for member in ("obama", "biden"):
            photos = sorted(str(p) for p in require_data(f"media/faces/enroll/{member}").glob("*.jpg"))
            enroll_files(shared.gallery, analyzer, member, Consent(f"form-{member}"), photos, 0.5)
        yield shared, settings
    del os.environ["TEST_FACE_SETTINGS_KEY"]


def decide(door: tuple[Shared, FaceSettings], images: list[npt.NDArray[np.uint8]], **changes: Any) -> list[Any]:
    """Events of a face stage built with the door's settings changed by ``changes``, over ``images`` at 5 fps."""
    shared, settings = door
    assert shared.gallery is not None
    stage = FaceStage("door", settings.model_copy(update=changes), shared, shared.gallery)
    stage.warm_up()
    events: list[Any] = []
    for i, image in enumerate(images):
        t = 1000.0 + i / FPS
        events += stage.process(Frame("door", Capture(i + 1, int(t * 1e9), 1_700_000_000.0 + t), image))
    return events


def test_min_frames_is_when_a_face_is_decided(
    door: tuple[Shared, FaceSettings], frames: dict[str, npt.NDArray[np.uint8]]
) -> None:
    member = [frames["obama_a"]] * 6
    for min_frames in (2, 5):
        (event,) = decide(door, member, min_frames=min_frames)
        assert isinstance(event, ShopperIdentified) and event.member_id == "obama" and event.frames == min_frames


def test_liveness_match_threshold_and_margin_decide_what_a_face_is(
    door: tuple[Shared, FaceSettings], frames: dict[str, npt.NDArray[np.uint8]]
) -> None:
    """``liveness_threshold`` (this live face scores about 0.8), ``match_threshold`` (cosine to obama's templates
    about 0.6) and ``match_margin`` (over biden) turn the same frames into a member, a spoof or a visitor."""
    member = [frames["obama_a"]] * 5  # min_frames (5) good frames
    (identified,) = decide(door, member)
    assert isinstance(identified, ShopperIdentified) and identified.member_id == "obama"
    assert 0.5 < identified.liveness < 0.99 and 0.4 < identified.confidence < 0.9 and identified.margin < 0.8
    assert [type(e) for e in decide(door, member, liveness_threshold=0.99)] == [SpoofSuspected]
    assert [type(e) for e in decide(door, member, match_threshold=0.9)] == [VisitorSeen]
    assert [type(e) for e in decide(door, member, match_margin=0.8)] == [VisitorSeen]


def test_best_frames_is_how_many_of_the_best_faces_are_averaged(
    door: tuple[Shared, FaceSettings], frames: dict[str, npt.NDArray[np.uint8]]
) -> None:
    """With ``best_frames`` 1 the decision is the best-quality frame's own match score; with 4 the four
    embeddings (of frames of unequal quality) are averaged into another score."""
    shared, settings = door
    assert shared.gallery is not None
    sharp = frames["obama_a"]
    # the same person in four frames of unequal quality: defocused, noisy, darker
    images = [
        sharp,
        cv2.GaussianBlur(sharp, (0, 0), 2.0),
        np.clip(sharp.astype(np.int16) + np.random.default_rng(1).integers(-25, 26, sharp.shape), 0, 255).astype(
            np.uint8
        ),
        (sharp * 0.6).astype(np.uint8),
    ]
    analyzer = load_analyzer(settings, shared.models)
    faces = [analyzer.analyse(image)[0] for image in images]
    best_face = max(faces, key=lambda f: f.quality.score)
    assert best_face.embedding is not None
    alone = match(best_face.embedding, shared.gallery.matrix(), settings.match_threshold, settings.match_margin)
    assert alone is not None
    (one,) = decide(door, images, min_frames=4, best_frames=1)
    (four,) = decide(door, images, min_frames=4, best_frames=4)
    print(f"\nbest_frames 1: confidence {one.confidence:.4f}; best_frames 4: {four.confidence:.4f}")
    assert one.confidence == pytest.approx(alone.score, abs=1e-5)
    assert abs(four.confidence - one.confidence) > 0.005


def test_track_timeout_ends_a_face_track(
    door: tuple[Shared, FaceSettings], frames: dict[str, npt.NDArray[np.uint8]]
) -> None:
    """``track_timeout_s``: a face gone for 1.2 s is the same track (decided once) with 2 s, a new one (decided
    again) with 0.5 s."""
    images = [frames["obama_a"]] * 5 + [frames["empty"]] * 5 + [frames["obama_a"]] * 5
    assert [e.member_id for e in decide(door, images, track_timeout_s=2.0)] == ["obama"]
    assert [e.member_id for e in decide(door, images, track_timeout_s=0.5)] == ["obama", "obama"]


def test_member_window_is_how_long_a_member_counts_as_at_the_terminal(tmp_path: Path) -> None:
    """``member_window_s``: what speech (and other pipelines) see as the member at the terminal."""
    for window, expected in ((0.3, None), (30.0, "m-1")):
        text = config_text(tmp_path, f"pipelines:\n  face: {{member_window_s: {window}}}\n")
        with ExitStack() as stack:
            shared = build_shared(parse_config(text, base_dir=tmp_path), stack)
            shared.presence.seen("m-1")
            assert shared.presence.current() == "m-1"
            time.sleep(0.4)
            assert shared.presence.current() == expected


def test_the_gallery_key_comes_from_where_the_settings_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``key_credential``, ``key_env`` and ``key_file`` name where the gallery key is; templates sealed with one
    key do not open with another."""
    keys = {name: secrets.token_hex(32) for name in ("credential", "env", "file")}
    (tmp_path / "gallery-key").write_text(keys["credential"])
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("TEST_GALLERY_KEY", keys["env"])
    key_file = tmp_path / "key"
    key_file.write_text(keys["file"])
    key_file.chmod(0o400)
    template = np.ones(128, np.float32) / np.sqrt(128)

    def sealed_then_opened(writer: FaceSettings, reader: FaceSettings) -> bool:
        state = tmp_path / secrets.token_hex(4)
        gallery = open_gallery(writer, state)
        gallery.enroll("m-1", [template], [1.0], Consent("form-1"))
        gallery.close()
        try:
            gallery = open_gallery(reader, state)  # another key is refused at open (the key-check value)
        except WrongGalleryKey:
            return False
        try:
            return len(gallery.matrix()) == 1
        finally:
            gallery.close()

    by_credential = FaceSettings(key_credential="gallery-key", key_env=None)
    by_env = FaceSettings(key_credential=None, key_env="TEST_GALLERY_KEY")
    by_file = FaceSettings(key_credential=None, key_env=None, key_file=key_file)
    for settings in (by_credential, by_env, by_file):
        assert sealed_then_opened(settings, settings)
    assert not sealed_then_opened(by_credential, by_env)
    assert not sealed_then_opened(by_env, by_file)
    with pytest.raises(GalleryKeyError, match="environment variable MISSING_KEY"):
        open_gallery(FaceSettings(key_credential=None, key_env="MISSING_KEY"), tmp_path / "none")
