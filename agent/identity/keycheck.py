"""The gallery's key-check value: a gallery opened with another key is refused at once, with one clear line.

Without it a wrong key was only found when a template failed to decrypt: enrolment with the wrong key succeeded
(adding templates nobody could match against the others) and identification then failed for everyone. The value
is an HMAC-SHA256 of a constant under the gallery key, stored in the gallery: it reveals nothing about the key,
and comparing it costs one HMAC. A gallery made before the value existed gets it on its first open whose key
decrypts a stored template (or that holds none): the migration.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Callable
from pathlib import Path

SCHEMA = "CREATE TABLE IF NOT EXISTS gallery_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)"
NAME = "key_check"
_CONSTANT = b"store-agent gallery key check v1"


class WrongKey(Exception):
    """The gallery was created under another key; the message names the gallery."""


def value(key: bytes) -> bytes:
    """The key-check value of ``key``."""
    return hmac.new(key, _CONSTANT, hashlib.sha256).digest()


def message(path: Path) -> str:
    return (
        f"{path}: wrong gallery key (this gallery was created with another key; set the key it was made with, or "
        "move the gallery aside and enrol the members again)"
    )


def ensure(db: sqlite3.Connection, path: Path, key: bytes, opens_a_template: Callable[[], bool | None]) -> bool:
    """Check ``key`` against the stored value, writing it first when there is none; True when it was written.

    ``opens_a_template()`` decrypts one stored template: True it opened, False it did not, None there is none.
    Raises :class:`WrongKey` when the key is not the gallery's.
    """
    db.execute(SCHEMA)
    expected = value(key)
    row = db.execute("SELECT value FROM gallery_meta WHERE name = ?", (NAME,)).fetchone()
    if row is not None:
        if not hmac.compare_digest(bytes(row[0]), expected):
            raise WrongKey(message(path))
        return False
    if opens_a_template() is False:
        raise WrongKey(message(path))
    db.execute("INSERT OR IGNORE INTO gallery_meta VALUES (?, ?)", (NAME, expected))
    # another process may have written one at the same moment: the stored value is the one that counts
    stored = db.execute("SELECT value FROM gallery_meta WHERE name = ?", (NAME,)).fetchone()
    if not hmac.compare_digest(bytes(stored[0]), expected):
        raise WrongKey(message(path))
    return True
