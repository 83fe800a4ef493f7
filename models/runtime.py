"""onnxruntime sessions: created once per model per process, warmed up once, providers from config."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.manifest import resolve

if TYPE_CHECKING:
    import onnxruntime as ort

logger = logging.getLogger(__name__)

_sessions: dict[tuple[str, Path, tuple[str, ...], int], ort.InferenceSession] = {}
_lock = threading.Lock()


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def session_for(
    name: str,
    models_dir: Path,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    threads: int = 1,
) -> ort.InferenceSession:
    """The shared session for manifest model ``name``; created and warmed up on first use.

    Providers not available in this onnxruntime build are skipped with a
    warning (a Jetson config on an x86 test machine still runs, on CPU).
    """
    import onnxruntime as ort

    key = (name, models_dir.resolve(), tuple(providers), threads)
    with _lock:
        session = _sessions.get(key)
        if session is not None:
            return session
        path = resolve(name, models_dir)
        available = set(ort.get_available_providers())
        usable = [p for p in providers if p in available]
        for missing in (p for p in providers if p not in available):
            logger.warning("model %s: execution provider %s is not available here; skipping it", name, missing)
        if not usable:
            usable = ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=options, providers=usable)
        warm_up(session)
        _sessions[key] = session
        logger.info("model %s loaded from %s on %s", name, path, ",".join(session.get_providers()))
        return session


def warm_up(session: ort.InferenceSession) -> None:
    """Run once on zeros so the first real frame does not pay for lazy initialisation."""
    feeds: dict[str, Any] = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else 64) for i, d in enumerate(inp.shape)]
        dtype = np.float32 if "float" in inp.type else np.int64 if "int64" in inp.type else np.uint8
        feeds[inp.name] = np.zeros(shape, dtype=dtype)
    try:
        session.run(None, feeds)
    except Exception as exc:  # a model with data-dependent shapes may reject zeros; it still works
        logger.debug("warm-up run skipped: %s", exc)
