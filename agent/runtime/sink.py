"""Where stamped events go. Delivery (the MQTT outbox) is one sink; JSON lines on stdout is another.

A sink's ``accept`` is called from several worker threads; once it returns,
the event is the sink's responsibility (the outbox returns after it queued the
event for the next group commit and guarantees it on ``close``).
"""

from __future__ import annotations

import threading
from typing import Protocol, TextIO

from agent.events import Event


class EventSink(Protocol):
    def accept(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
    """One JSON payload per line, flushed per event (``--print-events``)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.count = 0

    def accept(self, event: Event) -> None:
        line = event.to_json()
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
            self.count += 1

    def close(self) -> None:
        with self._lock:
            self._stream.flush()


class MemorySink:
    """Keeps events in memory for in-process consumers (evaluation scripts, tests of the runtime)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []
        self.closed = False

    def accept(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def close(self) -> None:
        self.closed = True


class FanoutSink:
    """Hands each event to several sinks in order (e.g. the outbox and stdout)."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def accept(self, event: Event) -> None:
        for sink in self.sinks:
            sink.accept(event)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
