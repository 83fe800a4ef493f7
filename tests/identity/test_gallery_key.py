"""A gallery refuses a key it was not made with: at open, at enrolment, at start and in ``identify`` (exit 78)."""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from agent.identity import keycheck
from agent.identity.gallery import Consent, Gallery, GalleryError, WrongGalleryKey
from agent.identity.keys import GalleryKeyError
from agent.pipelines.face.resources import gallery_path
from models.face.analyzer import EMBEDDER_MODELS
from tests.conftest import REPO

MODEL = EMBEDDER_MODELS["sface"]
KEY, OTHER = secrets.token_bytes(32), secrets.token_bytes(32)


def _vectors(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [(v / np.linalg.norm(v)).astype(np.float32) for v in rng.normal(size=(n, 128))]


def _enrolled(path: Path, key: bytes = KEY) -> Path:
    gallery = Gallery(path, key, MODEL)
    gallery.enroll("m-1", _vectors(2), [0.9, 0.8], Consent("F-1"))
    gallery.close()
    return path


def _stored_check(path: Path) -> bytes | None:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT value FROM gallery_meta WHERE name = 'key_check'").fetchone()
    return None if row is None else bytes(row[0])


def _as_before_the_check(path: Path) -> None:
    """A gallery as the releases before the key-check value wrote it."""
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE gallery_meta")


def test_a_new_gallery_stores_the_key_check_and_refuses_another_key(tmp_path: Path) -> None:
    path = _enrolled(tmp_path / "gallery.db")
    assert _stored_check(path) == keycheck.value(KEY)
    assert keycheck.value(KEY) != keycheck.value(OTHER)
    with pytest.raises(WrongGalleryKey) as refused:
        Gallery(path, OTHER, MODEL)
    line = str(refused.value)
    assert str(path) in line and "wrong gallery key" in line and "\n" not in line
    assert isinstance(refused.value, GalleryError) and isinstance(refused.value, GalleryKeyError)
    again = Gallery(path, KEY, MODEL)  # the right key still opens it, and nothing was added by the refusal
    assert [m.member_id for m in again.members()] == ["m-1"] and len(again.matrix().members) == 1
    again.close()


def test_an_old_gallery_gets_the_check_on_its_first_good_open(tmp_path: Path) -> None:
    path = _enrolled(tmp_path / "gallery.db")
    _as_before_the_check(path)
    with pytest.raises(WrongGalleryKey, match="wrong gallery key"):  # its template does not open under OTHER
        Gallery(path, OTHER, MODEL)
    assert _stored_check(path) is None, "a refused key writes nothing"
    Gallery(path, KEY, MODEL).close()  # the migration
    assert _stored_check(path) == keycheck.value(KEY)
    with pytest.raises(WrongGalleryKey):
        Gallery(path, OTHER, MODEL)


def test_an_old_empty_gallery_takes_the_key_it_is_opened_with(tmp_path: Path) -> None:
    path = tmp_path / "gallery.db"
    Gallery(path, KEY, MODEL).close()
    _as_before_the_check(path)
    Gallery(path, KEY, MODEL).close()
    assert _stored_check(path) == keycheck.value(KEY)


# --- the commands, as real processes ------------------------------------------------------------------


def _face_config(tmp_path: Path, models_dir: Path) -> Path:
    data = {
        "version": 1,
        "store": {"id": "s1", "name": "Test"},
        "terminal": {"id": "t1"},
        "storage": {"state_dir": str(tmp_path / "state")},
        "models": {"directory": str(models_dir)},
        "cameras": [{"name": "cam", "type": "test-pattern", "width": 320, "height": 240, "fps": 5}],
        "pipelines": {"face": {"enabled": True}},
    }
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    _enrolled(gallery_path(tmp_path / "state"))
    return path


def _cli(*args: str, key: bytes) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STORE_AGENT_GALLERY_KEY": key.hex()}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        ["members", "enroll", "--member-id", "m-2", "--consent-ref", "F-2", "photo.jpg"],
        ["members", "list"],
        ["identify", "photo.jpg"],
        ["run"],
        ["check-config", "--strict"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_every_command_refuses_a_wrong_key_with_one_line_and_78(
    tmp_path: Path, models_dir: Path, args: list[str]
) -> None:
    config = _face_config(tmp_path, models_dir)
    before = gallery_path(tmp_path / "state").read_bytes()
    done = _cli(*args[:2], "-c", str(config), *args[2:], key=OTHER)
    assert done.returncode == 78, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if "wrong gallery key" in line]
    assert len(lines) == 1 and str(gallery_path(tmp_path / "state")) in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert gallery_path(tmp_path / "state").read_bytes() == before, "nothing was enrolled or changed"
