"""Golden tests of the pure parts: decode, NMS, alignment, pose, liveness crop and fusion, match, audit, keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from agent.identity import audit
from agent.identity.keys import GalleryKeyError, load_key, new_key_text, parse_key
from models.face.align import REFERENCE_112, similarity_transform
from models.face.detector import decode, nms
from models.face.liveness import fuse, scaled_crop_box
from models.face.match import GalleryMatrix, best, match
from models.face.quality import pose


def test_decode_places_box_and_landmarks_on_the_anchor_grid() -> None:
    size = (64, 64)
    outs: dict[str, np.ndarray] = {}
    for s in (8, 16, 32):
        n = (64 // s) ** 2
        outs[f"cls_{s}"] = np.zeros((1, n, 1), np.float32)
        outs[f"obj_{s}"] = np.zeros((1, n, 1), np.float32)
        outs[f"bbox_{s}"] = np.zeros((1, n, 4), np.float32)
        outs[f"kps_{s}"] = np.zeros((1, n, 10), np.float32)
    idx = 2 * 8 + 3  # row 2, col 3 at stride 8
    outs["cls_8"][0, idx, 0] = 0.81
    outs["obj_8"][0, idx, 0] = 1.0
    outs["bbox_8"][0, idx] = [0.5, 0.5, np.log(2.0), np.log(3.0)]
    outs["kps_8"][0, idx, :2] = [0.25, -0.5]
    boxes, kps, scores = decode(outs, size, 0.5)
    assert scores == pytest.approx([0.9])
    assert boxes[0] == pytest.approx([28 - 8, 20 - 12, 16, 24])
    assert kps[0, 0] == pytest.approx([26, 12])


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]], np.float32)
    assert nms(boxes, np.array([0.8, 0.9, 0.7], np.float32), 0.3) == [1, 2]


def test_similarity_transform_recovers_rotation_scale_shift() -> None:
    angle, scale, shift = np.radians(20), 2.5, np.array([30.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = REFERENCE_112 @ rot.T + shift
    m = similarity_transform(src, REFERENCE_112)
    assert src @ m[:, :2].T + m[:, 2] == pytest.approx(REFERENCE_112, abs=1e-9)
    with pytest.raises(ValueError, match="degenerate"):
        similarity_transform(np.zeros((5, 2)), REFERENCE_112)


def test_pose_is_frontal_on_the_template_and_turned_when_the_nose_moves() -> None:
    yaw, roll, pitch = pose(REFERENCE_112)
    assert abs(yaw) < 0.02 and abs(roll) < 1 and 0.4 < pitch < 0.6
    turned = REFERENCE_112.copy()
    turned[2, 0] += 20
    assert pose(turned)[0] > 0.5


def test_liveness_crop_shrinks_scale_and_stays_inside() -> None:
    assert scaled_crop_box(640, 480, (300, 200, 100, 100), 2.7) == (215, 115, 485, 385)
    left, top, right, bottom = scaled_crop_box(640, 480, (0, 0, 200, 200), 4.0)
    assert left == 0 and top == 0 and right <= 639 and bottom <= 479
    assert fuse(np.array([[0.0, 10.0, 0.0]]), np.array([[10.0, 0.0, 0.0]])) == pytest.approx(0.5, abs=1e-3)


def _gallery() -> GalleryMatrix:
    t = np.eye(4, dtype=np.float32)
    t = np.vstack([t, [0.8, 0.6, 0, 0]]).astype(np.float32)
    return GalleryMatrix(t, np.array([0, 1, 2, 3, 0], np.int32), ("a", "b", "c", "d"))


def test_match_threshold_and_margin() -> None:
    g = _gallery()
    probe = np.array([0.9, 0.1, 0, 0], np.float32)
    probe /= np.linalg.norm(probe)
    found = match(probe, g, threshold=0.5, margin=0.2)
    assert found is not None and found.member_id == "a" and found.margin > 0.2
    look_alike = np.array([0.7, 0.7, 0, 0], np.float32) / np.sqrt(0.98)
    assert best(look_alike, g).member_id == "a"  # via its second template 0.8/0.6
    assert match(look_alike, g, threshold=0.5, margin=0.3) is None  # b (0.71) is within 0.3 of a (0.99)
    assert match(probe, g, threshold=0.995) is None
    assert match(probe, GalleryMatrix.empty(4), threshold=0.1) is None
    with pytest.raises(ValueError, match="dims"):
        match(np.ones(3, np.float32), g, 0.1)


def test_audit_chain_detects_edits_and_deletions() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    chain = audit.AuditChain(db, b"k" * 32)
    for i in range(3):
        chain.append("enroll", f"s{i}", {"n": i})
    assert chain.verify().seq == 3
    db.execute("UPDATE audit_log SET detail = '{\"n\":9}' WHERE seq = 2")
    with pytest.raises(ValueError, match="entry 2"):
        chain.verify()
    db.execute("UPDATE audit_log SET detail = '{\"n\":1}' WHERE seq = 2")
    db.execute("DELETE FROM audit_log WHERE seq = 2")
    with pytest.raises(ValueError, match="missing"):
        chain.verify()


def test_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = new_key_text()
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("K_TEST", text)
    assert load_key("K_TEST", None) == bytes.fromhex(text)
    with pytest.raises(GalleryKeyError, match="64 hex"):
        parse_key("short", "test")
    key_file = tmp_path / "key"
    key_file.write_text(text)
    key_file.chmod(0o644)
    with pytest.raises(GalleryKeyError, match="0400"):
        load_key(None, None, key_file)
    key_file.chmod(0o400)
    assert load_key(None, None, key_file) == bytes.fromhex(text)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "gallery-key").write_text(text)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert load_key(None, "gallery-key") == bytes.fromhex(text)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(GalleryKeyError, match="no gallery key found"):
        load_key("K_MISSING", "gallery-key")
