"""Logging from the config's ``logging:`` section.

'text' stamps each line with the time. 'journal' is for systemd: journald adds the time itself, and reads a
``<N>`` at the start of each line as the syslog priority (sd-daemon(3): 3 err, 4 warning, 6 info, 7 debug), so
``journalctl -p warning`` shows only warnings and errors. Every line of a record carries the prefix, tracebacks
included: journald takes each line as its own entry.
"""

from __future__ import annotations

import logging
import sys

from agent.config.schema import LoggingSection

#: sd-daemon priority per logging level (CRITICAL is "crit").
PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def priority(levelno: int) -> int:
    """The syslog priority of a record's level; levels between the named ones take the next lower one's."""
    for level, value in PRIORITIES.items():
        if levelno >= level:
            return value
    return 7


class JournalFormatter(logging.Formatter):
    """``<N>LEVEL logger: message`` on every line of the record."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def configure_logging(settings: LoggingSection, override: str | None = None) -> None:
    fmt = "%(levelname)s %(name)s: %(message)s"
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "journal":
        handler.setFormatter(JournalFormatter(fmt))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s " + fmt))
    root.addHandler(handler)
    root.setLevel(override or settings.level)
    for name, level in settings.levels.items():
        logging.getLogger(name).setLevel(level)
