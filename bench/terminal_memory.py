"""Resident memory of each part of the terminal, loaded in turn in one fresh process, as the daemon loads them.

    python bench/terminal_memory.py --config TERMINAL.yaml     (bench/whole_terminal.py --breakdown runs it)

Marks RSS after Python itself, after the heavy libraries and the agent's own imports, after the outbox and the
shared services (the member gallery among them), then through every enabled pipeline's build and warm-up: each
model session (start-up reports "loading model X" before each), the product catalogue (its embedding and index,
after "catalogue" reports), and what else each stage loads (PocketSphinx, Whisper). Each row is the RSS growth
from the previous mark: what that part added on top of everything before it (libraries shared by two parts count
for the first).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Marks:
    """Labelled RSS readings; the growth between two marks belongs to the first one's label."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float]] = []
        self._label = "python itself"
        self._rss = 0.0  # the interpreter's own RSS is the first row's growth

    def mark(self, next_label: str) -> None:
        now = rss_mb()
        self.rows.append((self._label, now - self._rss))
        self._label, self._rss = next_label, now

    def report(self, status: str, _extend_s: float) -> None:
        """A start-up report: a model about to load, or the catalogue starting."""
        if status.startswith("loading model "):
            self.mark(f"model {status.removeprefix('loading model ')}")
        elif status.startswith("catalogue 0/"):
            self.mark("catalogue (embedding and index)")


def measure(config_path: Path) -> list[tuple[str, float]]:
    marks = Marks()
    marks.mark("numpy, OpenCV, onnxruntime")
    import cv2  # noqa: F401
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401

    marks.mark("agent imports (runtime, delivery, config)")
    from agent import startup
    from agent.config.loader import load_config
    from agent.delivery.outbox import Outbox
    from agent.delivery.topics import Topics
    from agent.pipelines.registry import PLUGINS
    from agent.runtime.wiring import build_shared
    from models.runtime import set_progress_hook

    loaded = load_config(config_path)
    config = loaded.config
    marks.mark("outbox (SQLite)")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        outbox = Outbox(Path(tmp) / "outbox.db", config.storage.outbox, Topics.for_config(config))
        stack.callback(outbox.close)
        marks.mark("shared services (member gallery, fusion, cards)")
        shared = build_shared(config, stack)
        startup.set_reporter(marks.report)
        set_progress_hook(startup.report)
        sections = config.pipelines.sections()
        for plugin in PLUGINS:
            settings = plugin.settings(enabled=True) if plugin.always_on else sections[plugin.name]
            if not settings.enabled:
                continue
            marks.mark(f"{plugin.name}: stages")
            stages: list[Any] = plugin.builder()(settings, shared)
            for stage in stages:
                marks.mark(f"{plugin.name}: warm-up {stage.source}")
                stage.warm_up()
                stack.callback(stage.close)
        try:  # what the agent does after its warm-ups (absent from older versions: the row is then 0)
            from models.runtime import release_freed_memory  # type: ignore[attr-defined]
        except ImportError:
            release_freed_memory = None
        marks.mark("freed heap returned after start-up (malloc_trim)")
        if release_freed_memory is not None:
            release_freed_memory()
        marks.mark("end")
    return [(label, round(mb, 1)) for label, mb in marks.rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    rows = measure(args.config)
    print(json.dumps({"rows": rows, "total_mb": round(rss_mb(), 1)}))


if __name__ == "__main__":
    main()
