"""The ``models`` section reaches every onnxruntime session a pipeline builds: directory, providers, threads."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path

import pytest

from agent.config.loader import parse_config
from agent.pipelines.people.settings import PeopleSettings
from agent.pipelines.people.stage import PeopleStage
from agent.pipelines.people.stage import build as build_people
from agent.runtime.wiring import build_shared
from models.manifest import ModelError
from tests.conftest import require_model
from tests.media import config_text


def people_stage(tmp_path: Path, models: str) -> PeopleStage:
    """The people pipeline's stage built from a config whose ``models`` section is ``models``."""
    text = config_text(
        tmp_path, "cameras:\n  - {name: door, type: test-pattern}\npipelines:\n  people: {enabled: true}\n"
    )
    lines = [f"models: {models}" if line.startswith("models:") else line for line in text.splitlines()]
    config = parse_config("\n".join(lines), base_dir=tmp_path)
    with ExitStack() as stack:
        (stage,) = build_people(config.pipelines.settings(PeopleSettings), build_shared(config, stack))
    assert isinstance(stage, PeopleStage)
    return stage


def test_models_section_reaches_every_session(
    tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``directory`` is where the files are read from, ``providers`` the execution providers each session is
    created with (in order; one this onnxruntime lacks is skipped and named), ``threads`` its intra-op threads."""
    require_model(models_dir, "yolox_nano.onnx")
    stage = people_stage(
        tmp_path, f"{{directory: {models_dir}, providers: [AzureExecutionProvider, CPUExecutionProvider], threads: 3}}"
    )
    assert not stage.pose.loaded and not stage.appearance.loaded  # type: ignore[union-attr]  # until a member track
    sessions = [stage.detector.session, stage.pose.get().session, stage.appearance.get().session]  # type: ignore[union-attr]
    for session in sessions:
        assert session.get_providers() == ["AzureExecutionProvider", "CPUExecutionProvider"]
        assert session.get_session_options().intra_op_num_threads == 3

    stage = people_stage(tmp_path, f"{{directory: {models_dir}, threads: 1}}")
    assert stage.detector.session.get_providers() == ["CPUExecutionProvider"]
    assert stage.detector.session.get_session_options().intra_op_num_threads == 1

    with caplog.at_level(logging.WARNING, logger="models.runtime"):
        cuda = "[CUDAExecutionProvider, CPUExecutionProvider]"
        stage = people_stage(tmp_path, f"{{directory: {models_dir}, providers: {cuda}, threads: 2}}")
    if "CUDAExecutionProvider" not in stage.detector.session.get_providers():
        said = "model yolox-nano: skipping execution provider CUDAExecutionProvider: CUDAExecutionProvider is not in"
        assert said in caplog.text and "install onnxruntime-gpu" in caplog.text

    empty = tmp_path / "no-models"
    empty.mkdir()
    with pytest.raises(ModelError, match=str(empty)):
        people_stage(tmp_path, f"{{directory: {empty}}}")


def test_memory_arena_setting_reaches_the_sessions(tmp_path: Path, models_dir: Path) -> None:
    """``models.memory_arena`` (on by default) is each session's CPU memory arena."""
    if not (models_dir / "yolox_nano.onnx").is_file():
        pytest.skip(f"people models not found in {models_dir}")
    stage = people_stage(tmp_path, f"{{directory: {models_dir}, memory_arena: false}}")
    assert stage.detector.session.get_session_options().enable_cpu_mem_arena is False  # type: ignore[union-attr]
    stage = people_stage(tmp_path, f"{{directory: {models_dir}}}")
    assert stage.detector.session.get_session_options().enable_cpu_mem_arena is True  # type: ignore[union-attr]
    people_stage(tmp_path, f"{{directory: {models_dir}}}")  # back to the default for the tests after this one
