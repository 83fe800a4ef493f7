"""The retained ``status`` and ``health`` payloads, and the board readings that go into health.

Readings come from ``/proc`` and ``/sys`` (no extra dependency); a board that
does not expose a temperature simply reports none.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from agent import __version__, clock
from agent.config.loader import LoadedConfig
from agent.events import iso_time
from models.runtime import provider_report

THERMAL = Path("/sys/class/thermal")


def status_payload(
    state: str, loaded: LoadedConfig, boot_count: int, reason: str | None = None, *, terminal_key: str | None = None
) -> dict[str, Any]:
    """``online`` (birth), ``offline`` (last will, or a clean stop with ``reason``).

    It also says which store and terminal these are for people and reports (the store's name and time zone,
    where the terminal is mounted), and carries the terminal's public key, which a hub may pin on first sight
    (``monitor --tofu``) to check the terminal's MACs from then on.
    """
    config = loaded.config
    payload: dict[str, Any] = {
        "state": state,
        "store_id": config.store.id,
        "terminal_id": config.terminal.id,
        "store_name": config.store.name,
        "timezone": config.store.timezone,
        "location": config.terminal.location,
        "version": __version__,
        "boot_count": boot_count,
        "config_sha256": loaded.sha256,
        "pipelines": config.pipelines.enabled_names(),
        "at": iso_time(clock.now()),
    }
    if reason is not None:
        payload["reason"] = reason
    if terminal_key is not None:
        payload["terminal_key"] = terminal_key
    return payload


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def temperatures() -> dict[str, float]:
    """Degrees Celsius per thermal zone (``cpu-thermal``, ``gpu-thermal``, ...); empty where none exist."""
    out: dict[str, float] = {}
    if not THERMAL.is_dir():
        return out
    for zone in sorted(THERMAL.glob("thermal_zone*")):
        raw = _read(zone / "temp")
        if raw is None or not raw.lstrip("-").isdigit():
            continue
        name = _read(zone / "type") or zone.name
        out[name if name not in out else f"{name}-{zone.name}"] = round(int(raw) / 1000.0, 1)
    return out


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    text = _read(Path("/proc/meminfo")) or ""
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out


def _rss_bytes() -> int | None:
    text = _read(Path("/proc/self/statm"))
    if not text:
        return None
    return int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE")


def process_status() -> dict[str, int | None]:
    """This process's peak RSS (VmHWM), threads and open file descriptors, from ``/proc/self``: what grows
    when something leaks, and what a small board runs out of."""
    fields: dict[str, str] = {}
    for line in (_read(Path("/proc/self/status")) or "").splitlines():
        key, _, rest = line.partition(":")
        fields[key] = rest.strip()
    peak = fields.get("VmHWM", "").split()
    try:
        fds: int | None = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = None
    threads = fields.get("Threads", "")
    return {
        "rss_peak_bytes": int(peak[0]) * 1024 if peak and peak[0].isdigit() else None,
        "threads": int(threads) if threads.isdigit() else None,
        "open_fds": fds,
    }


class SystemProbe:
    """CPU use of this process since the previous reading, memory, temperatures and uptimes."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), self._cpu_s())

    @staticmethod
    def _cpu_s() -> float:
        t = os.times()
        return t.user + t.system

    def read(self) -> dict[str, Any]:
        now, cpu = time.monotonic(), self._cpu_s()
        then, cpu_then = self._last
        self._last = (now, cpu)
        elapsed = max(now - then, 1e-6)
        mem = _meminfo()
        uptime = _read(Path("/proc/uptime"))
        load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
        return {
            "cpu_percent": round(100.0 * (cpu - cpu_then) / elapsed, 1),
            "cpu_count": os.cpu_count() or 1,
            "load_1m": round(load[0], 2),
            "rss_bytes": _rss_bytes(),
            **process_status(),
            "cpu_s": round(cpu, 2),
            "memory_total_bytes": mem.get("MemTotal"),
            "memory_available_bytes": mem.get("MemAvailable"),
            "temperature_c": temperatures() or None,
            "system_uptime_s": round(float(uptime.split()[0]), 1) if uptime else None,
        }


def health_payload(
    loaded: LoadedConfig,
    agent_health: dict[str, Any],
    outbox: dict[str, Any],
    mqtt: dict[str, Any],
    system: dict[str, Any],
    watchdog_ok: bool,
    commands: dict[str, Any],
    *,
    storage: dict[str, Any] | None = None,
    member_sync: dict[str, int] | None = None,
    audit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One health message: the agent's own figures plus delivery, storage and the board (and the store-wide
    members' sync where it is on)."""
    return {
        "store_id": loaded.config.store.id,
        "terminal_id": loaded.config.terminal.id,
        "at": iso_time(clock.now()),
        **agent_health,
        "watchdog_ok": watchdog_ok,
        "outbox": outbox,
        "mqtt": mqtt,
        "commands": commands,
        **({"storage": storage} if storage is not None else {}),
        "system": system,
        "models": provider_report(loaded.config.models.providers),
        **({"member_sync": member_sync} if member_sync is not None else {}),
        **({"audit": audit} if audit is not None else {}),
    }
