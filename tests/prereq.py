"""What a test needs from the machine: skipped locally when missing, a failure in CI.

CI must not go green because a broker, a tool or the shared data were absent and every test that needed them
quietly skipped. ``.ci/run`` exports ``STORE_AGENT_CI=1``; there a missing prerequisite fails the test, naming it.
Optional extras and hardware (a camera, a UART) are not prerequisites: those tests still skip everywhere.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True in CI (``STORE_AGENT_CI=1``, exported by ``.ci/run``)."""
    return os.environ.get("STORE_AGENT_CI", "") not in ("", "0")


def require(what: str, reason: str) -> NoReturn:
    """Stop the test because ``what`` is missing: skip locally, fail in CI."""
    message = f"{what} is missing: {reason}"
    if in_ci():
        pytest.fail(f"CI prerequisite missing: {message}", pytrace=False)
    pytest.skip(message)


def require_tool(name: str, install: str) -> str:
    """The path of the executable ``name``, or :func:`require` with how to install it."""
    path = shutil.which(name)
    if path is None:
        require(name, f"not on PATH ({install})")
    return path
