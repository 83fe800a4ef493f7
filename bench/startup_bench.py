"""Start-up time to ready and resident memory of the daemon, on a given config.

    python bench/startup_bench.py [--config CONFIG] [--runs 5] [--settle 10]

Starts ``store-agent run`` several times, measures the time from exec to the
"ready" log line and the RSS after ``--settle`` seconds of running, stops it
with SIGTERM and prints medians. The default config is a 10 fps synthetic
camera with motion detection (what the runtime itself costs, without models).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

DEFAULT_CONFIG = """\
version: 1
store: {{id: bench, name: Bench}}
terminal: {{id: t1}}
storage: {{state_dir: {state}}}
logging: {{level: INFO}}
cameras:
  - {{name: cam, type: test-pattern, fps: 10, walkers: 1}}
pipelines:
  motion: {{enabled: true}}
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def one_run(config: Path, settle_s: float) -> tuple[float, int, float]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "ready in" in line:
            break
    ready_s = time.monotonic() - started
    time.sleep(settle_s)
    rss = rss_kib(proc.pid)
    stop_started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    return ready_s, rss, time.monotonic() - stop_started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = args.config
        if config is None:
            config = Path(tmp) / "bench.yaml"
            config.write_text(DEFAULT_CONFIG.format(state=Path(tmp) / "state"))
        results = [one_run(config, args.settle) for _ in range(args.runs)]
    ready, rss, stop = zip(*results, strict=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"config: {args.config or 'built-in (10 fps test pattern + motion)'}; {args.runs} runs")
    print(f"exec to ready: median {statistics.median(ready):.2f} s (min {min(ready):.2f}, max {max(ready):.2f})")
    print(f"RSS after {args.settle:g} s: median {statistics.median(rss) / 1024:.1f} MiB")
    print(f"SIGTERM to exit: median {statistics.median(stop):.2f} s (max {max(stop):.2f})")


if __name__ == "__main__":
    main()
