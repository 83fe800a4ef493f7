"""Logging from the config's ``logging:`` section; journald adds timestamps, so 'journal' omits them."""

from __future__ import annotations

import logging
import sys

from agent.config.schema import LoggingSection


def configure_logging(settings: LoggingSection, override: str | None = None) -> None:
    fmt = "%(levelname)s %(name)s: %(message)s"
    if settings.format == "text":
        fmt = "%(asctime)s " + fmt
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(override or settings.level)
    for name, level in settings.levels.items():
        logging.getLogger(name).setLevel(level)
