"""Shared test fixtures: where the real test data lives, and how to skip clearly without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """``$STORE_AGENT_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("STORE_AGENT_DATA", REPO.parent / "shared" / "data")).resolve()


def require_data(relative: str) -> Path:
    """The path of a shared data file or folder, or skip the test naming what is missing."""
    path = data_dir() / relative
    if not path.exists():
        pytest.skip(f"shared test data not found: {path} (set STORE_AGENT_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_dir()
    if not root.is_dir():
        pytest.skip(f"shared test data not found at {root} (set STORE_AGENT_DATA)")
    return root


@pytest.fixture(scope="session")
def models_dir(shared_data: Path) -> Path:
    """The verified model files from the shared data (tests never download weights)."""
    return shared_data / "models"
