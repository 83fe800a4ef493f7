"""Start-up progress: long start-up steps (loading and warming models, building a TensorRT engine, embedding the
product catalogue) report how far they are, and while the daemon is starting under systemd each report extends
the unit's start timeout (``EXTEND_TIMEOUT_USEC``): a slow board that is still making progress is never killed by
``TimeoutStartSec``, and one that hangs still is.

This module imports nothing of the agent, so pipelines, the catalogue and the runtime may all call :func:`report`;
the daemon installs the reporter for the duration of its start-up only (outside it, reports go nowhere).
"""

from __future__ import annotations

from collections.abc import Callable

#: ``reporter(status, extend_s)``: show ``status`` and allow ``extend_s`` more seconds for the start-up.
Reporter = Callable[[str, float], None]

_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> None:
    global _reporter
    _reporter = reporter


def report(status: str, extend_s: float = 60.0) -> None:
    """Say what start-up is doing now; ``extend_s``: the longest the next report may take to come."""
    reporter = _reporter
    if reporter is not None:
        reporter(status, extend_s)
