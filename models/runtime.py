"""onnxruntime sessions: created once per model per process, warmed up once, providers from config."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.manifest import resolve

if TYPE_CHECKING:
    import onnxruntime as ort

logger = logging.getLogger(__name__)

#: A transformation of the verified model bytes before the session is built (e.g. weight folding).
Prepare = Callable[[bytes], bytes]

_sessions: dict[tuple[Any, ...], ort.InferenceSession] = {}
_lock = threading.Lock()


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def session_for(
    name: str,
    models_dir: Path,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    threads: int = 1,
    *,
    prepare: Prepare | None = None,
    config_entries: Mapping[str, str] | None = None,
) -> ort.InferenceSession:
    """The shared session for manifest model ``name``; created and warmed up on first use.

    Providers not available in this onnxruntime build are skipped with a
    warning (a Jetson config on an x86 test machine still runs, on CPU).
    ``prepare`` rewrites the verified file's bytes in memory before loading
    (nothing is written to the models directory); ``config_entries`` are
    onnxruntime session config entries. Both are part of the cache key.
    """
    import onnxruntime as ort

    entries = tuple(sorted((config_entries or {}).items()))
    key = (name, models_dir.resolve(), tuple(providers), threads, prepare, entries)
    with _lock:
        session = _sessions.get(key)
        if session is not None:
            return session
        path = resolve(name, models_dir)
        available = set(available_providers())
        usable = [p for p in providers if p in available]
        for missing in (p for p in providers if p not in available):
            logger.warning("model %s: execution provider %s is not available here; skipping it", name, missing)
        if not usable:
            usable = ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        for entry, value in entries:
            options.add_session_config_entry(entry, value)
        model: str | bytes = str(path) if prepare is None else prepare(path.read_bytes())
        session = ort.InferenceSession(model, sess_options=options, providers=usable)
        warm_up(session)
        _sessions[key] = session
        logger.info(
            "model %s loaded from %s%s on %s",
            name,
            path,
            "" if prepare is None else f" ({prepare.__name__})",
            ",".join(session.get_providers()),
        )
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
