"""Stand-ins for the few Python 3.11 APIs the project uses, so it also runs on Python 3.10.

JetPack 6 ships Python 3.10 and NVIDIA's onnxruntime-gpu wheels are built for it, so a Jetson runs the agent on
the system interpreter. ``drivers`` is the lowest layer (``agent`` and ``models`` import it, it imports neither),
so the stand-ins live here.
"""

from __future__ import annotations

import enum
import sys

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:

    class StrEnum(str, enum.Enum):
        """Python 3.11's ``enum.StrEnum``: members are strings, and ``str()`` and ``format()`` give the value."""

        def __str__(self) -> str:
            return str(self.value)


__all__ = ["StrEnum"]
