"""``store-agent catalog build`` and ``search`` on a real catalogue: progress, cache reuse, JSON lines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.media import config_text
from tests.product.conftest import all_skus, make_catalog


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_build_then_search(tmp_path: Path, products_dir: Path, models_dir: Path) -> None:
    skus = all_skus(products_dir)[:4]
    make_catalog(tmp_path / "catalog", products_dir, skus)
    config = tmp_path / "store.yaml"
    body = "pipelines:\n  product:\n    catalog_dir: catalog\n"
    config.write_text(config_text(tmp_path, body).replace(f"{tmp_path}/models", str(models_dir)))

    first = cli("catalog", "build", "-c", str(config))
    assert first.returncode == 0, first.stderr
    assert "4 SKUs, 4 photos (4 embedded, 0 from cache)" in first.stdout
    # stderr is a pipe here: plain lines, no carriage returns (tests/agent/test_progress.py has the terminal)
    progress = first.stderr.splitlines()
    assert progress[0] == "embedding new photos: started (4 photos)", first.stderr
    assert progress[-1].startswith("embedding new photos: 4 embedded, 0 taken from the cache (")
    assert len(progress) <= 5 and "\r" not in first.stderr
    again = cli("catalog", "build", "--config", str(config))
    assert "(0 embedded, 4 from cache)" in again.stdout and again.stderr == "", "nothing to embed: no progress"
    shelf = sorted((products_dir / "shelf" / skus[0]).glob("*.jpg"))[0]
    shutil.copy(shelf, tmp_path / "catalog" / skus[0] / shelf.name)
    quiet = cli("catalog", "build", "--config", str(config), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert "5 photos (1 embedded, 4 from cache)" in quiet.stdout

    query = products_dir / "catalog" / skus[2] / "iconic.jpg"
    found = cli("catalog", "search", "--config", str(config), str(query), str(query), "--top", "3")
    assert found.returncode == 0, found.stderr
    lines = [json.loads(line) for line in found.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["image"] == str(query) and len(lines[0]["top"]) == 3
    # A SKU's row is the mean of its photo's 16 augmented copies, so the photo itself scores 0.91, not 1.0.
    assert lines[0]["top"][0]["sku"] == skus[2] and lines[0]["top"][0]["score"] > 0.85

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\x00" * 10)
    failed = cli("catalog", "search", "--config", str(config), str(bad))
    assert failed.returncode == 65 and f"{bad}: not a readable image" in failed.stderr
