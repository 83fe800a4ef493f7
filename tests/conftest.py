"""Shared test fixtures: where the real test data lives (its absence skips locally and fails in CI), fuzz profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.prereq import in_ci, require

REPO = Path(__file__).resolve().parents[1]


# Fuzz tests: CI replays a fixed set of cases (derandomised, so a run is red or green for a reason, not by chance);
# a developer's run keeps drawing new ones and remembers failures in .hypothesis/. STORE_AGENT_CI=1 (set by .ci/run)
# or HYPOTHESIS_PROFILE=ci|dev picks one. A test's own ``@settings(max_examples=...)`` still sets its count.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=200,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, print_blob=True)


settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "dev"))


def data_dir() -> Path:
    """``$STORE_AGENT_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("STORE_AGENT_DATA", REPO.parent / "shared" / "data")).resolve()


def require_data(relative: str) -> Path:
    """The path of a shared data file or folder, or skip the test naming what is missing."""
    path = data_dir() / relative
    if not path.exists():
        require(
            "STORE_AGENT_DATA", f"shared test data not found: {path} (set STORE_AGENT_DATA to the shared data folder)"
        )
    return path


def require_model(models_dir: Path, file: str) -> Path:
    """A model file of the shared data (``models/``), or :func:`require` naming it."""
    path = models_dir / file
    if not path.is_file():
        require("STORE_AGENT_DATA", f"model {file} not found in {models_dir} (store-agent models fetch)")
    return path


def optional_model(models_dir: Path, file: str, provision: str) -> Path:
    """A model that no shipped default loads (an alternative a store may choose): where the shared data lacks it,
    the test skips, in CI too, naming how to provision it. The models the defaults load use :func:`require_model`."""
    path = models_dir / file
    if not path.is_file():
        pytest.skip(f"optional model {file} is not in {models_dir}: {provision}")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_dir()
    if not root.is_dir():
        require("STORE_AGENT_DATA", f"shared test data not found at {root} (set STORE_AGENT_DATA)")
    return root


@pytest.fixture(scope="session")
def models_dir(shared_data: Path) -> Path:
    """The verified model files from the shared data (tests never download weights)."""
    return shared_data / "models"
