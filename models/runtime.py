"""onnxruntime sessions: created once per model per process, warmed up once, providers from config.

A configured provider that cannot run here (CUDA or TensorRT with the CPU package installed, a missing CUDA
library) is skipped loudly: a warning names the missing package or library, and :func:`provider_report` puts the
same reason into ``health``. TensorRT keeps its built engines in a cache directory (the state directory's
``tensorrt/``), so a restart loads them instead of rebuilding them for minutes.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
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
#: model name -> providers its session actually runs on; provider -> why it is not used (for health)
_used: dict[str, list[str]] = {}
_problems: dict[str, str | None] = {}
_engine_cache_dir: Path | None = None
#: onnxruntime's CPU memory arena for new sessions (``models.memory_arena``).
_memory_arena = True
#: Start-up progress (the daemon sets it to agent.startup.report): ``hook(status, seconds the next step may take)``.
_progress_hook: Callable[[str, float], None] | None = None

#: The shared library inside onnxruntime/capi that each GPU provider loads at session creation.
PROVIDER_LIBRARIES = {
    "CUDAExecutionProvider": "libonnxruntime_providers_cuda.so",
    "TensorrtExecutionProvider": "libonnxruntime_providers_tensorrt.so",
    "OpenVINOExecutionProvider": "libonnxruntime_providers_openvino.so",
}
#: The distributions that provide the ``onnxruntime`` module; more than one installed means one shadows the other.
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def set_progress_hook(hook: Callable[[str, float], None] | None) -> None:
    """Who hears "loading model X" during start-up (systemd's start timeout is extended for each model)."""
    global _progress_hook
    _progress_hook = hook


def set_engine_cache_dir(path: Path | None) -> None:
    """Where TensorRT keeps built engines and timing caches (the daemon sets ``<state_dir>/tensorrt``)."""
    global _engine_cache_dir
    _engine_cache_dir = path


def set_memory_arena(enabled: bool) -> None:
    """Whether sessions created from now on keep onnxruntime's CPU memory arena (``models.memory_arena``).

    With the arena each session keeps the activations of its largest run. Without it they are freed after each
    run, but glibc's malloc keeps freed blocks of that size in its heap (its mmap threshold rises to them), so
    the process grew by more, not less (measured in docs/performance.md); fixing the threshold returns them but
    doubles the time per run in page faults. Hence on by default.
    """
    global _memory_arena
    _memory_arena = enabled


def release_freed_memory() -> bool:
    """Hand memory that the C heap holds but no longer uses back to the system (glibc's ``malloc_trim``).

    Loading a model leaves its file's bytes, the graph before optimisation and the folded weights freed but
    still resident; after the start-up (and a catalogue build) that is roughly half of what the sessions
    seemed to cost. ``False`` where the C library has no ``malloc_trim`` (musl, macOS).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


def engine_cache_dir(models_dir: Path) -> Path:
    """The TensorRT cache: the configured one, else ``tensorrt/`` beside the models directory (in the state dir)."""
    return _engine_cache_dir if _engine_cache_dir is not None else models_dir.parent / "tensorrt"


def provider_options(providers: Sequence[str], engine_cache: Path) -> list[dict[str, str]]:
    """onnxruntime's per-provider options, in the order of ``providers``: TensorRT caches its engines and timing
    data in ``engine_cache`` (without it every start rebuilds each engine, minutes on a Jetson)."""
    options: list[dict[str, str]] = []
    for provider in providers:
        if provider == "TensorrtExecutionProvider":
            options.append(
                {
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": str(engine_cache),
                    "trt_timing_cache_enable": "True",
                    "trt_timing_cache_path": str(engine_cache),
                }
            )
        else:
            options.append({})
    return options


def installed_runtimes() -> dict[str, str]:
    """The installed distributions that provide the ``onnxruntime`` module, with their versions."""
    found: dict[str, str] = {}
    for name in ORT_DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def provider_problem(provider: str) -> str | None:
    """Why ``provider`` cannot run here, naming the missing package or library; ``None`` when it can."""
    import onnxruntime as ort

    if provider == "CPUExecutionProvider":
        return None
    runtimes = installed_runtimes()
    build = ", ".join(f"{n} {v}" for n, v in runtimes.items()) or "onnxruntime of unknown origin"
    if len(runtimes) > 1:
        return (
            f"{provider}: {build} are installed together and one shadows the other's onnxruntime module; "
            "uninstall all of them, then install only the one for this board (onnxruntime-gpu on a Jetson)"
        )
    available = ort.get_available_providers()
    if provider not in available:
        hint = (
            "install onnxruntime-gpu instead of onnxruntime (on a Jetson, NVIDIA's wheel: systemd/install.sh)"
            if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
            else "install an onnxruntime build that has it"
        )
        return f"{provider} is not in this onnxruntime build ({build}; it has {', '.join(available)}): {hint}"
    library = PROVIDER_LIBRARIES.get(provider)
    if library is None:
        return None
    path = Path(ort.__file__).parent / "capi" / library
    if not path.is_file():
        return f"{provider}: {path} is missing from the onnxruntime install ({build})"
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:  # the message names the library the dynamic linker did not find (libcudnn.so.9, ...)
        return f"{provider}: {library} cannot load: {exc}"
    return None


def provider_report(configured: Sequence[str]) -> dict[str, Any]:
    """What ``health`` shows under ``models``: configured providers, those that cannot run here and why, and the
    providers each loaded model actually runs on."""
    with _lock:
        for provider in configured:
            _diagnose(provider)
        problems = {p: reason for p, reason in _problems.items() if reason is not None}
        used = {name: list(providers) for name, providers in _used.items()}
    return {"providers": list(configured), "unavailable": problems, "sessions": used}


def _diagnose(provider: str) -> str | None:
    """:func:`provider_problem`, worked out once per process (call with ``_lock`` held)."""
    if provider not in _problems:
        _problems[provider] = provider_problem(provider)
    return _problems[provider]


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

    Providers that cannot run here are skipped with a warning that says why
    (a Jetson config on an x86 test machine still runs, on CPU), and so is a
    provider onnxruntime itself dropped while creating the session.
    ``prepare`` rewrites the verified file's bytes in memory before loading
    (nothing is written to the models directory); ``config_entries`` are
    onnxruntime session config entries. Both are part of the cache key.
    """
    import onnxruntime as ort

    entries = tuple(sorted((config_entries or {}).items()))
    key = (name, models_dir.resolve(), tuple(providers), threads, prepare, entries, _memory_arena)
    with _lock:
        session = _sessions.get(key)
        if session is not None:
            return session
        path = resolve(name, models_dir)
        usable: list[str] = []
        for provider in providers:
            reason = _diagnose(provider)
            if reason is None:
                usable.append(provider)
            else:  # said for every model, so each load in the log shows what it runs on and why
                logger.warning("model %s: skipping execution provider %s: %s", name, provider, reason)
        if not usable:
            usable = ["CPUExecutionProvider"]
        cache = engine_cache_dir(models_dir)
        if "TensorrtExecutionProvider" in usable:
            cache.mkdir(parents=True, exist_ok=True)
        hook = _progress_hook
        if hook is not None:  # a TensorRT engine not yet in the cache takes minutes to build on a Jetson
            hook(f"loading model {name}", 900.0 if "TensorrtExecutionProvider" in usable else 120.0)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = _memory_arena
        for entry, value in entries:
            options.add_session_config_entry(entry, value)
        model: str | bytes = str(path) if prepare is None else prepare(path.read_bytes())
        session = ort.InferenceSession(
            model, sess_options=options, providers=usable, provider_options=provider_options(usable, cache)
        )
        running = list(session.get_providers())
        for dropped in (p for p in usable if p not in running):
            # onnxruntime falls back to the next provider when one fails to initialise (a CUDA library missing)
            reason = f"{dropped} failed to initialise (model {name}); onnxruntime's own log says why"
            _problems[dropped] = reason
            logger.warning("model %s: execution provider %s was dropped by onnxruntime: %s", name, dropped, reason)
        warm_up(session)
        _sessions[key] = session
        _used[name] = running
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
