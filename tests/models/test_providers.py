"""A configured execution provider that cannot run here is skipped loudly (a warning naming the missing package,
and health's ``models`` member), and TensorRT gets an engine cache in the state directory.

This machine's onnxruntime is the CPU package, so CUDA and TensorRT are really missing here: the fallback is the
real one. A TensorRT engine itself can only be built on a GPU board (not here); its options are checked as passed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import pytest

from models import runtime
from models.runtime import engine_cache_dir, provider_options, provider_report, session_for, set_engine_cache_dir

GPU = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_missing_gpu_providers_fall_back_to_cpu_loudly(models_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: nothing is missing")
    with caplog.at_level(logging.WARNING, logger="models.runtime"):
        session = session_for("antispoof_minifasnet_v1se", models_dir, GPU)
    assert session.get_providers() == ["CPUExecutionProvider"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for provider in GPU[:2]:
        said = [
            w
            for w in warnings
            if w.startswith(f"model antispoof_minifasnet_v1se: skipping execution provider {provider}: ")
        ]
        assert said, warnings
        assert f"{provider} is not in this onnxruntime build (onnxruntime {ort.__version__}" in said[0]
        assert "install onnxruntime-gpu instead of onnxruntime" in said[0]
    report = provider_report(GPU)
    assert report["providers"] == GPU
    assert set(report["unavailable"]) == set(GPU[:2])
    assert report["sessions"]["antispoof_minifasnet_v1se"] == ["CPUExecutionProvider"]


def test_tensorrt_caches_its_engines_in_the_state_directory(tmp_path: Path) -> None:
    options = provider_options(GPU, tmp_path / "tensorrt")
    assert options[0] == {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(tmp_path / "tensorrt"),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(tmp_path / "tensorrt"),
    }
    assert options[1:] == [{}, {}]
    # the daemon points the cache at <state_dir>/tensorrt; tools without a daemon use the models dir's neighbour
    previous = runtime._engine_cache_dir
    try:
        set_engine_cache_dir(None)
        assert engine_cache_dir(tmp_path / "state" / "models") == tmp_path / "state" / "tensorrt"
        set_engine_cache_dir(tmp_path / "state" / "tensorrt")
        assert engine_cache_dir(Path("/opt/models")) == tmp_path / "state" / "tensorrt"
    finally:
        set_engine_cache_dir(previous)


def test_the_daemon_puts_the_engine_cache_in_its_state_dir(tmp_path: Path) -> None:
    from contextlib import ExitStack

    from agent.config.loader import parse_config
    from agent.runtime.wiring import build_shared

    config = parse_config(
        f"version: 1\nstore: {{id: s, name: S}}\nterminal: {{id: t}}\nstorage: {{state_dir: {tmp_path}}}\n",
        file="store.yaml",
        base_dir=tmp_path,
    )
    previous = runtime._engine_cache_dir
    try:
        with ExitStack() as stack:
            build_shared(config, stack)
        assert engine_cache_dir(Path("/anywhere/models")) == tmp_path / "tensorrt"
    finally:
        set_engine_cache_dir(previous)
