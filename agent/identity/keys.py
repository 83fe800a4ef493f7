"""The gallery key: 32 random bytes from a systemd credential, an env var or a 0400 key file; never from YAML.

The key is given as 64 hex characters or base64 of 32 bytes. ``new_key_text``
makes one (``python -c 'from agent.identity.keys import new_key_text; print(new_key_text())'``).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path


class GalleryKeyError(Exception):
    """The gallery key is missing or malformed; the message says where it was looked for."""


DEFAULT_ENV = "STORE_AGENT_GALLERY_KEY"
DEFAULT_CREDENTIAL = "gallery-key"


def new_key_text() -> str:
    return secrets.token_hex(32)


def parse_key(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise GalleryKeyError(f"gallery key from {where} must be 64 hex characters or base64 of 32 bytes")
    return raw


def load_key(
    env: str | None = DEFAULT_ENV, credential: str | None = DEFAULT_CREDENTIAL, key_file: Path | None = None
) -> bytes:
    """The first key found: systemd credential, then environment variable, then key file."""
    tried: list[str] = []
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if credential:
        if cred_dir and (Path(cred_dir) / credential).is_file():
            return parse_key((Path(cred_dir) / credential).read_text(), f"systemd credential {credential!r}")
        tried.append(f"systemd credential {credential!r} (LoadCredential=)")
    if env:
        if os.environ.get(env):
            return parse_key(os.environ[env], f"environment variable {env}")
        tried.append(f"environment variable {env}")
    if key_file:
        if key_file.is_file():
            mode = stat.S_IMODE(key_file.stat().st_mode)
            if mode & 0o077:
                raise GalleryKeyError(
                    f"gallery key file {key_file} has mode {mode:o}; it must be readable by its owner only (0400)"
                )
            return parse_key(key_file.read_text(), f"key file {key_file}")
        tried.append(f"key file {key_file}")
    raise GalleryKeyError("no gallery key found; tried " + ", ".join(tried))
