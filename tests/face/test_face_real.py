"""Real models on real photos: enrol / probe / group, spoof samples, encryption at rest, erasure, bad input."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.events import Event
from agent.identity.enrollment import (
    EnrollmentError,
    enforce_retention,
    enroll_files,
    erase_member,
    judge_image,
    register_erasure_hook,
    unregister_erasure_hook,
)
from agent.identity.gallery import Consent, Gallery, GalleryError
from agent.pipelines.face.events import ShopperIdentified
from models.face.analyzer import FaceAnalyzer
from models.face.match import match
from models.manifest import ModelError, entry
from models.provision import fetch
from tests.conftest import require_data
from tests.face.conftest import imread

THRESHOLD, MARGIN, LIVE = 0.40, 0.05, 0.5


def _enrol_all(gallery: Gallery, analyzer: FaceAnalyzer) -> None:
    root = require_data("media/faces/enroll")
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(str(p) for p in person.glob("*.jpg"))
        result = enroll_files(gallery, analyzer, person.name, Consent("form-" + person.name), photos, LIVE)
        assert result.photos == len(photos) and result.enrolled == 2 * len(photos), [v.reason for v in result.verdicts]


def _identify(analyzer: FaceAnalyzer, gallery: Gallery, path: Path) -> list[str]:
    out: list[str] = []
    for obs in analyzer.analyse(imread(str(path)), pad=0.25):
        if obs.embedding is None:
            continue
        found = match(obs.embedding, gallery.matrix(), THRESHOLD, MARGIN)
        out.append(found.member_id if found else "None")
    return out


def test_probes_match_their_member_and_strangers_match_nobody(analyzer: FaceAnalyzer, gallery: Gallery) -> None:
    _enrol_all(gallery, analyzer)
    for probe in sorted(require_data("media/faces/probe").glob("*.jpg")):
        expected = probe.stem.rsplit("_", 1)[0]
        assert _identify(analyzer, gallery, probe) == [expected], probe.name
    group = require_data("media/faces/group")
    # three people: the two enrolled members and a third person who must stay unmatched
    assert sorted(_identify(analyzer, gallery, group / "obama_and_biden.jpg"), key=str) == ["None", "biden", "obama"]
    assert sorted(_identify(analyzer, gallery, group / "two_people.jpg"), key=str) == ["biden", "obama"]


def test_spoof_samples_are_flagged(analyzer: FaceAnalyzer) -> None:
    root = require_data("media/spoof")
    scores = {}
    for name in ("image_F1.jpg", "image_F2.jpg", "image_T1.jpg"):
        faces = analyzer.analyse(imread(str(root / name)))
        assert faces and faces[0].liveness is not None
        scores[name] = faces[0].liveness
    assert scores["image_F1.jpg"] < LIVE and scores["image_F2.jpg"] < LIVE < scores["image_T1.jpg"], scores
    verdict = judge_image(analyzer, imread(str(root / "image_F2.jpg")), "F2", LIVE)
    assert not verdict.accepted and "spoof" in (verdict.reason or "")


def test_templates_are_encrypted_at_rest(analyzer: FaceAnalyzer, gallery: Gallery) -> None:
    _enrol_all(gallery, analyzer)
    raw = gallery.path.read_bytes()
    for vector in gallery.matrix().templates:
        for chunk in (vector.astype("<f4").tobytes()[:16], vector.astype("<f8").tobytes()[:16]):
            assert chunk not in raw
    with sqlite3.connect(gallery.path) as db:
        sealed = db.execute("SELECT sealed FROM templates").fetchall()
    assert len(sealed) == 8 and all(len(s[0]) == 128 * 4 + 16 for s in sealed)  # 2 members x 2 photos x 2 views
    with pytest.raises(GalleryError, match="wrong gallery key"):
        Gallery(gallery.path, b"\x01" * 32, gallery.model)


def test_erasure_removes_member_queued_events_and_keeps_the_audit_chain(
    analyzer: FaceAnalyzer, gallery: Gallery
) -> None:
    _enrol_all(gallery, analyzer)
    queue = [
        Event(
            f"e{i}",
            i,
            "s",
            "t",
            0.0,
            ShopperIdentified(
                captured_at=0.0,
                member_id=m,
                confidence=0.9,
                margin=0.3,
                liveness=0.9,
                camera="c",
                track_id="f",
                frames=3,
            ),
        )
        for i, m in enumerate(["obama", "biden", "obama"])
    ]

    def purge(member_id: str) -> int:
        keep = [e for e in queue if e.to_payload().get("member_id") != member_id]
        removed = len(queue) - len(keep)
        queue[:] = keep
        return removed

    register_erasure_hook(purge)
    try:
        result = erase_member(gallery, "obama")
    finally:
        unregister_erasure_hook(purge)
    assert result.was_enrolled and result.queued_events_removed == 2
    assert [e.to_payload()["member_id"] for e in queue] == ["biden"]
    assert "obama" not in [m.member_id for m in gallery.members()]
    assert _identify(analyzer, gallery, require_data("media/faces/probe/obama_a.jpg")) == ["None"]
    assert gallery.verify_audit() == 4
    assert [e.action for e in gallery.audit_entries()][-1] == "erase"
    assert not erase_member(gallery, "obama").was_enrolled


def test_expired_consent_deletes_templates(analyzer: FaceAnalyzer, gallery: Gallery) -> None:
    photo = str(require_data("media/faces/enroll/biden/1.jpg"))
    enroll_files(gallery, analyzer, "biden", Consent("f1", expires_at=4e9), [photo], LIVE)
    erased: list[str] = []

    def purge(member_id: str) -> int:
        erased.append(member_id)
        return 0

    register_erasure_hook(purge)
    try:
        assert enforce_retention(gallery, now=3e9) == []
        assert enforce_retention(gallery, now=4e9 + 1) == ["biden"]
    finally:
        unregister_erasure_hook(purge)
    assert erased == ["biden"], "expiry purges queued events like an erasure request"
    assert len(gallery.matrix()) == 0
    assert gallery.audit_entries()[-1].detail["reason"] == "consent expired"


def test_bad_input_is_refused_with_reasons(analyzer: FaceAnalyzer, gallery: Gallery, tmp_path: Path) -> None:
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a jpeg")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    group = str(require_data("media/faces/group/two_people.jpg"))
    with pytest.raises(EnrollmentError) as err:
        enroll_files(gallery, analyzer, "m1", Consent("f"), [str(not_image), str(blank), group], LIVE)
    reasons = dict(err.value.refusals)
    assert "cannot read" in reasons[str(not_image)]
    assert reasons[str(blank)] == "no face found"
    assert "2 faces" in reasons[group]
    assert gallery.members() == [] and gallery.verify_audit() == 0
    with pytest.raises(GalleryError, match="consent reference"):
        gallery.enroll("m1", [np.ones(128, np.float32)], [1.0], Consent(""))


def test_model_file_missing_or_wrong_sha256(tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.runtime import session_for

    with pytest.raises(ModelError, match=r"missing.*models fetch"):
        session_for("antispoof_minifasnet_v2", tmp_path)
    model = entry("antispoof_minifasnet_v2")
    monkeypatch.setenv("STORE_AGENT_DATA", str(shared_data))
    wrong = model.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ModelError, match=r"sha256 mismatch.*nothing was installed|nothing was installed.*sha256"):
        fetch(wrong, tmp_path / "models")
    assert not any((tmp_path / "models").iterdir())
    installed = fetch(model, tmp_path / "models")
    assert installed.read_bytes() == (shared_data / "models" / model.file).read_bytes()
