"""Fault figures (issue 14): for each fault, events accepted, delivered, lost, duplicated, and the time to recover.

The scenarios are the fault suite's (``tests/delivery/faults.py``), at full length: no subscriber for 30 s (both
ack modes), disk full for 30 s on an 8 MB tmpfs, a read-only remount (ext4 on a loop device, the kernel's own
``errors=remount-ro`` path), SIGTERM to ``store-agent run`` on a full disk, the outbox truncated at 10 random
offsets (fixed seed), SIGKILL at 20 random points while committing. Real mosquitto, real files; the file
system faults need root (a scenario that cannot run here says why and is left out).

    sudo python bench/faults_bench.py [--only NAME ...] [--away 30] [--full 30] [--cuts 10] [--kills 20]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.delivery import faults


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="scenario names to run (default: all)")
    parser.add_argument("--away", type=float, default=30.0, help="seconds without a subscriber")
    parser.add_argument("--full", type=float, default=30.0, help="seconds of full disk")
    parser.add_argument("--cuts", type=int, default=10, help="truncation offsets")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    scenarios: dict[str, Callable[[Path], Any]] = {
        "no-subscriber-broker": lambda d: faults.no_subscriber(d, args.away, ack="broker"),
        "no-subscriber-hub": lambda d: faults.no_subscriber(d, args.away, ack="hub"),
        "disk-full": lambda d: faults.disk_full(d, args.full),
        "read-only": lambda d: faults.read_only(d, 10.0),
        "sigterm-full-disk": lambda d: faults.sigterm_on_full_disk(d, 10.0),
        "truncated-outbox": lambda d: faults.truncated_outbox(d, args.cuts),
        "power-cuts": lambda d: faults.power_cuts(d, args.kills),
    }
    chosen = args.only or list(scenarios)
    print(
        f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {platform.machine()} {os.cpu_count()} cores, "
        f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())}; mosquitto on loopback, MQTT 5, QoS 1",
        flush=True,
    )
    print(faults.HEADER, flush=True)
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix=f"faults-{name}-") as tmp:
            started = time.monotonic()
            try:
                result = scenarios[name](Path(tmp))
            except faults.Unavailable as exc:
                print(f"{name:<44} not run here: {exc}", flush=True)
                continue
            for figures in result if isinstance(result, list) else [result]:
                print(figures.row(), flush=True)
            print(f"  ({name}: {time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
