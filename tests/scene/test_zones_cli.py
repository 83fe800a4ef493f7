"""``store-agent zones --snapshot``: the installer's view of zones and lines, and the shipped scene demo config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from agent.cli.zones_cmd import LINE_COLOUR, QUEUE_COLOUR, ZONE_COLOUR
from tests.conftest import REPO, require_data
from tests.media import config_text, write_video

SCENE = """\
cameras:
  - {name: door, type: video-file, path: VIDEO, realtime: false}
  - {name: till, type: video-file, path: VIDEO, realtime: false}
pipelines:
  people:
    enabled: false
    scenes:
      door:
        normalized: true
        lines:
          - {name: entrance, points: [[0.25, 0.1], [0.25, 0.9]]}
        zones:
          - {name: shelf, points: [[0.6, 0.6], [0.95, 0.6], [0.95, 0.95], [0.6, 0.95]]}
          - {name: tills, queue: true, points: [[0.6, 0.05], [0.95, 0.05], [0.95, 0.3], [0.6, 0.3]]}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def scene_config(tmp_path: Path) -> Path:
    video = write_video(tmp_path / "door.avi", frames=5, size=(320, 240))
    path = tmp_path / "store.yaml"
    path.write_text(config_text(tmp_path, SCENE.replace("VIDEO", str(video))))
    return path


def colour_distance(pixel: np.ndarray, bgr: tuple[int, int, int]) -> float:
    return float(np.abs(pixel.astype(int) - np.array(bgr)).max())


def test_snapshot_draws_lines_and_zones_on_a_frame_of_the_camera(tmp_path: Path) -> None:
    config = scene_config(tmp_path)
    out = tmp_path / "door.png"
    result = cli("zones", "--config", str(config), "--camera", "door", "--snapshot", str(out))
    assert result.returncode == 0, result.stderr
    assert f"{out}: 320x240 frame of door with 2 zone(s) and 1 line(s)" in result.stdout
    drawn = cv2.imread(str(out))
    assert drawn is not None and drawn.shape == (240, 320, 3)
    # The line runs down x = 80 from y = 24 to 216; a third of the way down it is drawn in the line colour.
    assert colour_distance(drawn[88, 80], LINE_COLOUR) < 40
    # Zone outlines in their colours (queue zones differ), fills tinted but the frame still visible inside.
    assert colour_distance(drawn[144, 250], ZONE_COLOUR) < 40  # shelf's top edge, y = 0.6 * 240
    assert colour_distance(drawn[72, 250], QUEUE_COLOUR) < 40  # tills' bottom edge, y = 0.3 * 240
    inside = drawn[200, 210].astype(int)
    assert 80 < inside.sum() / 3 < 200 and inside[2] > inside[0]  # grey 80 blended with orange (BGR 0, 200, 255)
    # Away from everything drawn, the frame is untouched grey.
    assert colour_distance(drawn[200, 150], (80, 80, 80)) < 12


def test_unknown_camera_and_camera_without_scene_are_named(tmp_path: Path) -> None:
    config = scene_config(tmp_path)
    out = tmp_path / "x.png"
    unknown = cli("zones", "--config", str(config), "--camera", "back", "--snapshot", str(out))
    assert unknown.returncode != 0
    assert f"{config}: no enabled camera named 'back' (configured: door, till)" in unknown.stderr
    no_scene = cli("zones", "--config", str(config), "--camera", "till", "--snapshot", str(out))
    assert no_scene.returncode != 0
    assert "pipelines.people.scenes has no entry for camera 'till'" in no_scene.stderr
    assert not out.exists()
    unwritable = cli("zones", "--config", str(config), "--camera", "door", "--snapshot", str(tmp_path / "no/x.png"))
    assert unwritable.returncode != 0 and "cannot write" in unwritable.stderr
    assert "Traceback" not in unknown.stderr + no_scene.stderr + unwritable.stderr


def test_shipped_scene_demo_config_validates_and_draws_on_the_pets_clip(tmp_path: Path) -> None:
    """docs/scene-demo.yaml points at the shared data beside the checkout; here at STORE_AGENT_DATA."""
    video = require_data("media/video/vtest_pets2009_480x360.avi")
    models = require_data("models")
    text = (REPO / "docs" / "scene-demo.yaml").read_text()
    for old, new in [
        ("../../shared/data/media/video/vtest_pets2009_480x360.avi", str(video)),
        ("../../shared/data/models", str(models)),
        ("../var/scene-demo", str(tmp_path / "state")),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    config = tmp_path / "scene-demo.yaml"
    config.write_text(text)
    checked = cli("check-config", str(config))
    assert checked.returncode == 0, checked.stderr
    out = tmp_path / "plaza.png"
    drawn = cli("zones", "--config", str(config), "--camera", "plaza", "--snapshot", str(out))
    assert drawn.returncode == 0, drawn.stderr
    assert "480x360 frame of plaza with 2 zone(s) and 1 line(s)" in drawn.stdout
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (360, 480, 3)
    # road-west: x = 0.25 * 480 = 120, from y = 100 to 240.
    assert colour_distance(image[130, 120], LINE_COLOUR) < 60
