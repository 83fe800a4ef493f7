"""The speed work kept its meaning: folded SFace equals the original, top-k 1:N equals brute force, sizes, windows."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from agent.identity.presence import RecentMember
from models.face.derive import DeriveError, fields, folded_session, strip_weight_inputs
from models.face.detector import dynamic_input_size
from models.face.match import TOP_K, GalleryMatrix, best
from models.vectors import l2_normalise
from tests.conftest import require_model

SFACE = "face_recognition_sface_2021dec_int8bq"


def test_folded_sface_gives_the_original_embeddings(models_dir: Path) -> None:
    path = require_model(models_dir, f"{SFACE}.onnx")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    original = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    shape_feeds = {i.name: np.zeros([int(d) for d in i.shape], np.float32) for i in original.get_inputs()[1:]}
    folded = folded_session(SFACE, models_dir)
    assert [i.name for i in folded.get_inputs()] == ["data"], "only the image remains a graph input"
    assert len(original.get_inputs()) == 30
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 112, 112)).astype(np.float32)
    want = original.run(None, {"data": x, **shape_feeds})[0]
    got = folded.run(None, {"data": x})[0]
    print(f"\nmax |folded - original| = {np.abs(got - want).max():.2e} (values up to {np.abs(want).max():.2f})")
    np.testing.assert_allclose(got, want, atol=1e-4)
    stripped = strip_weight_inputs(path.read_bytes())
    assert strip_weight_inputs(stripped) == stripped, "deriving again changes nothing"
    assert b"PRelu" not in stripped and b"store_agent_prelu_zero" in stripped


def test_derive_refuses_bytes_that_are_not_a_model() -> None:
    with pytest.raises(DeriveError):
        strip_weight_inputs(b"\x0a\xff\xff")  # a length-delimited field running past the end
    with pytest.raises(DeriveError, match="no graph"):
        strip_weight_inputs(b"\x08\x07")  # ir_version = 7 and nothing else
    assert [(n, w) for n, w, *_ in fields(b"\x08\x07\x12\x02ab")] == [(1, 0), (2, 2)]


def test_top_k_match_equals_brute_force() -> None:
    rng = np.random.default_rng(7)
    for members, per_member in ((500, 3), (3, 40), (1, 5), (2, TOP_K + 4)):
        n = members * per_member
        templates = l2_normalise(rng.standard_normal((n, 32)).astype(np.float32))
        owners = np.repeat(np.arange(members, dtype=np.int32), per_member)
        gallery = GalleryMatrix(templates, owners, tuple(f"m{i}" for i in range(members)))
        for _ in range(20):
            probe = l2_normalise(templates[rng.integers(n)] + 0.3 * rng.standard_normal(32).astype(np.float32))
            sims = templates @ probe
            top = int(np.argmax(sims))
            others = sims[owners != owners[top]]
            want_margin = float(sims[top] - others.max()) if others.size else 1.0
            got = best(probe, gallery)
            assert got.member_id == f"m{owners[top]}"
            assert got.score == pytest.approx(float(sims[top]), abs=1e-6)
            assert got.margin == pytest.approx(want_margin, abs=1e-6)


def test_dynamic_input_size_shrinks_never_enlarges_and_keeps_multiples_of_32() -> None:
    assert dynamic_input_size(640, 480, 320) == ((320, 256), 0.5)
    assert dynamic_input_size(200, 100, 320) == ((224, 128), 1.0)
    assert dynamic_input_size(1920, 1080, 640)[0] == (640, 384)


def test_recent_member_window_and_erasure() -> None:
    recent = RecentMember(window_s=0.5)
    assert recent.current() is None
    recent.seen("m-1")
    assert recent.current() == "m-1"
    assert recent.forget("m-2") == 0 and recent.current() == "m-1"
    recent.forget("m-1")
    assert recent.current() is None
    recent.seen("m-3", time.monotonic() - 1.0)
    assert recent.current() is None, "seen longer ago than the window"
