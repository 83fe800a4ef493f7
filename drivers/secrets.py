"""Secrets (passwords, keys) from an environment variable or a systemd credential; never from the YAML.

The one place that reads them, for the broker password, camera passwords, the
card secret and the gallery key. Messages name where the secret was looked for
and never contain it.
"""

from __future__ import annotations

import os
from pathlib import Path


class SecretError(ValueError):
    """A secret named by the config could not be read; the message says where it was looked for."""


def read_secret(env: str | None, credential: str | None) -> str | None:
    """The secret from ``$env`` if named, else from the systemd credential ``credential``; ``None`` if neither is named.

    Trailing line ends are dropped (credential files usually end with one).
    """
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretError(f"environment variable {env} is not set")
        return value.rstrip("\r\n")
    if credential:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SecretError(
                f"systemd credential {credential!r} needs LoadCredential= (CREDENTIALS_DIRECTORY is not set); "
                "outside the systemd unit, name an environment variable for it in the config (the *_env key)"
            )
        path = Path(directory) / credential
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SecretError(f"cannot read systemd credential {credential!r} ({path}): {reason}") from None
    return None
