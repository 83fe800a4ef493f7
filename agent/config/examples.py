"""The example and demo configs that ship inside the package.

``agent/examples`` is a link to the checkout's ``config/`` and ships as package data, so the same path works in a
checkout and after a plain ``pip install`` (systemd/install.sh), where no checkout is left to point at.
"""

from __future__ import annotations

import os
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str) -> Path:
    """The path of a shipped example config, e.g. ``example("demo.yaml")``."""
    return EXAMPLES / name


def user_state_dir(name: str) -> Path:
    """A per-user state directory (``$XDG_STATE_HOME/store-agent/<name>``) for a demo run from an installed package,
    whose own relative ``state_dir`` would point inside the read-only site-packages."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "store-agent" / name


def installed(config: Path) -> bool:
    """Whether ``config`` is a shipped example inside an installed package (not a checkout's ``config/``): a run of
    it must not keep its state inside site-packages."""
    return not EXAMPLES.is_symlink() and config.resolve().is_relative_to(EXAMPLES.resolve())


def writable(path: Path) -> bool:
    """Whether ``path`` exists writable, or could be made: its nearest existing ancestor is writable."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
    return False
