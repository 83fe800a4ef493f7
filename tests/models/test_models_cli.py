"""``store-agent models list | fetch | verify`` against the real manifest and the shared model files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from models.manifest import entry, load_manifest
from tests.conftest import REPO

LIVENESS = ["antispoof_minifasnet_v2", "antispoof_minifasnet_v1se"]


def models_cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STORE_AGENT_DATA": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "agent", "models", *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=120
    )


def test_fetch_list_verify_and_repair_a_corrupt_file(tmp_path: Path, shared_data: Path) -> None:
    target = tmp_path / "models"
    listed = models_cli("list", "--dir", str(target), data=shared_data)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.stdout.splitlines()}
    assert set(rows) == set(load_manifest()) and all(row[3] == "missing" for row in rows.values())

    fetched = models_cli("fetch", *LIVENESS, "--dir", str(target), data=shared_data)
    assert fetched.returncode == 0, fetched.stderr
    for name in LIVENESS:
        model = entry(name)
        assert (target / model.file).read_bytes() == (shared_data / "models" / model.file).read_bytes()
    assert sorted(p.name for p in target.iterdir()) == sorted(entry(n).file for n in LIVENESS)  # no temporaries
    listed = models_cli("list", *LIVENESS, "--dir", str(target), data=shared_data)
    assert [line.split("\t")[3] for line in listed.stdout.splitlines()] == ["installed", "installed"]
    verified = models_cli("verify", *LIVENESS, "--dir", str(target), data=shared_data)
    assert verified.returncode == 0 and verified.stdout.splitlines() == [f"{n}: ok" for n in LIVENESS]

    corrupt = target / entry(LIVENESS[0]).file
    corrupt.chmod(0o644)
    data = bytearray(corrupt.read_bytes())
    data[1000] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    bad = models_cli("verify", *LIVENESS, "--dir", str(target), data=shared_data)
    assert bad.returncode == 1
    assert f"{LIVENESS[0]}: FAILED: model {LIVENESS[0]!r} at {corrupt} has sha256" in bad.stderr
    assert f"store-agent models fetch {LIVENESS[0]}" in bad.stderr and f"{LIVENESS[1]}: ok" in bad.stdout

    repaired = models_cli("fetch", LIVENESS[0], "--dir", str(target), data=shared_data)
    assert repaired.returncode == 0, repaired.stderr
    assert models_cli("verify", *LIVENESS, "--dir", str(target), data=shared_data).returncode == 0


def test_unknown_name_and_unavailable_source_are_errors_that_install_nothing(tmp_path: Path) -> None:
    target = tmp_path / "models"
    unknown = models_cli("verify", "no-such-model", "--dir", str(target), data=tmp_path)
    assert unknown.returncode == 2 and "unknown model(s): no-such-model (known: " in unknown.stderr
    empty = tmp_path / "empty-data"
    (empty / "models").mkdir(parents=True)
    failed = models_cli("fetch", LIVENESS[0], "--dir", str(target), data=empty)
    assert failed.returncode == 1
    assert "could not be provisioned; nothing was installed" in failed.stderr
    assert f"{empty / 'models' / entry(LIVENESS[0]).file} not found" in failed.stderr
    assert not target.exists() or not any(target.iterdir())
    missing = models_cli("verify", LIVENESS[0], "--dir", str(target), data=empty)
    assert missing.returncode == 1 and "is missing" in missing.stderr
