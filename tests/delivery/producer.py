"""A terminal that produces barcode events as fast as asked, for the SIGKILL chaos test (run as a subprocess).

It is the real daemon (outbox, publisher, agent) with no devices; events go in
through ``Agent.emit``. Every id the outbox has committed is appended to
``--accepted`` (flushed to the kernel, so it survives SIGKILL of this process).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from agent.config.loader import load_config
from agent.events import Event
from agent.pipelines.serial.events import BarcodeScanned
from agent.runtime.daemon import Daemon


class Recorder:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()

    def accept(self, event: Event) -> None:
        with self.lock:
            self.ids.append(event.event_id)

    def close(self) -> None:
        return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--accepted", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--count", type=int, default=10**9)
    args = parser.parse_args()
    recorder = Recorder()
    daemon = Daemon(load_config(args.config), extra_sink=recorder)
    daemon.start()
    written = 0
    with args.accepted.open("a", encoding="utf-8") as out:
        print("started", file=sys.stderr, flush=True)
        started = time.monotonic()
        for i in range(args.count):
            daemon.agent.emit(BarcodeScanned(captured_at=time.time(), device="scanner", code=str(i)))
            if i % 20 == 19:
                daemon.outbox.flush(5.0)
                with recorder.lock:
                    fresh = recorder.ids[written:]
                written += len(fresh)
                out.write("".join(f"{e}\n" for e in fresh))
                out.flush()
                delay = started + (i + 1) / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        daemon.outbox.flush(5.0)
        out.write("".join(f"{e}\n" for e in recorder.ids[written:]))
        out.flush()
        daemon.serve(until=lambda: daemon.outbox.rows == 0)
    daemon.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
