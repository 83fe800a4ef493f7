"""The wall clock the agent stamps events with, and whether it is synchronised.

A Raspberry Pi has no real-time clock: it boots with the time it saved at shutdown (or 1970) and NTP steps it,
hours or years, once the network is up. Wall time is therefore only a label here: events carry it, and whether
the clock was synchronised when they were stamped (``clock_synced``), so the hub can tell a real capture time from
a guess. Every age, timeout and retention window is measured on ``time.monotonic`` instead, which a step does not
move (``agent.delivery.outbox_clock`` carries ages across restarts).

Synchronised means the kernel says so (``adjtimex``: not ``TIME_ERROR``, no ``STA_UNSYNC``). The hardened unit's
``ProtectClock=yes`` denies ``adjtimex`` altogether (even the read-only call), so there the answer comes from
systemd-timesyncd's ``/run/systemd/timesync/synchronized`` or, for chrony and the like, ``timedatectl``
(systemd-timedated asks the kernel for us). The answer is cached for ``RECHECK_S`` and refreshed in the background,
so stamping an event never waits for it. ``STORE_AGENT_CLOCK_OFFSET_S`` (or :func:`set_offset`) moves this
module's wall clock, to show in tests what a step does; ``STORE_AGENT_CLOCK_SYNCED=0|1`` overrides the check.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

#: ``adjtimex`` returns TIME_ERROR when the clock is not synchronised; ``status`` has STA_UNSYNC set then too.
TIME_ERROR = 5
STA_UNSYNC = 0x0040
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
#: How long a synchronisation answer is reused before a background refresh (it is asked for on every event).
RECHECK_S = 10.0


class _Timex(ctypes.Structure):
    """The head of ``struct timex`` (the fields read here), then room for the rest of it."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    ]


_offset_s = float(os.environ.get("STORE_AGENT_CLOCK_OFFSET_S", "0") or 0)
_lock = threading.Lock()
_cached: tuple[float, bool] | None = None
_refreshing = False


def set_offset(seconds: float) -> None:
    """Move this process's wall clock by ``seconds`` (a clock step, for tests and drills)."""
    global _offset_s
    _offset_s = float(seconds)


def now() -> float:
    """Wall-clock seconds since the epoch, as events are stamped (a label: never used to measure time)."""
    return time.time() + _offset_s


def now_ns() -> int:
    return time.time_ns() + int(_offset_s * 1e9)


def _kernel_synchronised() -> bool | None:
    """The kernel's view through ``adjtimex`` (read-only: ``modes`` 0); None where it cannot be asked."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    timex = _Timex()
    state = adjtimex(ctypes.byref(timex))
    if state < 0:
        return None
    return state != TIME_ERROR and not timex.status & STA_UNSYNC


def _timedated_synchronised() -> bool | None:
    """systemd-timedated's ``NTPSynchronized`` (it asks the kernel, outside this unit's sandbox)."""
    tool = shutil.which("timedatectl")
    if tool is None:
        return None
    try:
        done = subprocess.run(
            [tool, "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True, timeout=3, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    answer = done.stdout.strip()
    return answer == "yes" if done.returncode == 0 and answer in ("yes", "no") else None


def check() -> bool:
    """Ask now: the kernel, else timesyncd's flag, else timedated (may take a moment: not for the hot path)."""
    kernel = _kernel_synchronised()
    if kernel is not None:
        return kernel
    if TIMESYNCD_FLAG.exists():
        return True
    return bool(_timedated_synchronised())


def _refresh() -> None:
    global _cached, _refreshing
    try:
        answer = check()
        with _lock:
            _cached = (time.monotonic(), answer)
    finally:
        _refreshing = False


def synchronised() -> bool:
    """Whether the wall clock is synchronised: asked once, then the cached answer, refreshed in the background."""
    forced = os.environ.get("STORE_AGENT_CLOCK_SYNCED")
    if forced in ("0", "1"):
        return forced == "1"
    global _cached, _refreshing
    with _lock:
        cached = _cached
        if cached is not None:
            if time.monotonic() - cached[0] >= RECHECK_S and not _refreshing:
                _refreshing = True
                threading.Thread(target=_refresh, name="clock-check", daemon=True).start()
            return cached[1]
    answer = check()
    with _lock:
        _cached = (time.monotonic(), answer)
    return answer


def boot_id() -> str | None:
    """This boot's id: two runs with the same one share ``time.monotonic``'s frame."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None
