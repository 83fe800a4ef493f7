"""CI cannot go green by skipping: a missing prerequisite skips locally and fails under ``STORE_AGENT_CI=1``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

NEEDS_DATA = """
from tests.conftest import require_data

def test_needs_shared_data():
    require_data("media/faces/enroll")
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_needs_data.py"
    test.write_text(NEEDS_DATA, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("STORE_AGENT_CI", "HYPOTHESIS_PROFILE")}
    env |= {"STORE_AGENT_DATA": str(tmp_path / "no-such-data"), "PYTHONPATH": str(REPO)}
    if ci is not None:
        env["STORE_AGENT_CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(test)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_missing_shared_data_skips_locally(tmp_path: Path) -> None:
    local = _run(tmp_path, None)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout + local.stderr
    assert "STORE_AGENT_DATA is missing" in local.stdout


def test_missing_shared_data_fails_in_ci(tmp_path: Path) -> None:
    ci = _run(tmp_path, "1")
    assert ci.returncode == 1 and "1 failed" in ci.stdout, ci.stdout + ci.stderr
    assert "CI prerequisite missing: STORE_AGENT_DATA" in ci.stdout


def test_ci_scripts_set_the_flag_and_run_the_readme_command() -> None:
    run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "export STORE_AGENT_CI=1" in run
    assert run.strip().splitlines()[-1] == "./scripts/test.sh"
    assert "./scripts/test.sh\n" in (REPO / "README.md").read_text(encoding="utf-8")
