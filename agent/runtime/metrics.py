"""Prometheus metrics: the ``health`` figures in the text exposition format (0.0.4), served on localhost.

The numbers are the ones the daemon publishes as ``health`` (the same function computes both), so a dashboard
and the hub never disagree. The mapping is mechanical: a number or boolean becomes a sample named after its
path (``outbox.depth`` -> ``store_agent_outbox_depth``); a mapping keyed by names the store chooses (devices,
pipeline workers, event types, drop reasons, thermal zones) becomes a label. Strings other than states are not
metrics and are left out. The standard library's HTTP server is enough for one scraper every few seconds.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "store_agent"
#: Health members that are mappings keyed by a name, and the label that name becomes.
LABELLED = {
    "devices": "device",
    "pipelines": "worker",
    "events_emitted": "type",
    "temperature_c": "zone",
    "errors": "error",
    "refused_acks": "reason",
}
#: Health members that only ever grow: exposed as counters (``_total``).
COUNTERS = {
    "events_emitted",
    "accepted",
    "committed",
    "delivered",
    "commits",
    "connects",
    "published",
    "acked",
    "hub_acks",
    "rejected",
    "resends",
    "processed",
    "emitted",
    "items",
    "dropped",
    "done",
    "timed_out",
}
UNITS = {"_s": "_seconds", "_bytes": "_bytes", "_c": "_celsius", "_percent": "_percent"}


def _name(parts: list[str]) -> str:
    name = "_".join(parts)
    for suffix, unit in UNITS.items():
        if name.endswith(suffix) and not name.endswith(unit):
            name = name[: -len(suffix)] + unit
            break
    return re.sub(r"[^a-zA-Z0-9_]", "_", f"{PREFIX}_{name}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return repr(value) if isinstance(value, float) else str(value)


Labels = tuple[tuple[str, str], ...]


def _samples(node: Any, path: list[str], labels: Labels, entry: bool = False) -> Iterator[tuple[str, Labels, float]]:
    """(metric name, labels, value) for every number under ``node``; ``entry``: node is one entry of a mapping
    whose keys became a label (its own keys are fields again)."""
    if isinstance(node, bool | int | float):
        yield _name(path), labels, node
        return
    if not isinstance(node, dict):
        return
    key = path[-1] if path else ""
    if not entry and key in LABELLED:
        for name, child in node.items():
            yield from _samples(child, path, (*labels, (LABELLED[key], str(name))), entry=True)
        return
    if not entry and key == "dropped":  # outbox.dropped[reason][class]
        for reason, classes in node.items():
            if isinstance(classes, dict):
                for cls, count in classes.items():
                    yield _name(path), (*labels, ("reason", str(reason)), ("class", str(cls))), count
            elif isinstance(classes, int | float):
                yield _name(path), (*labels, ("reason", str(reason))), classes
        return
    for name, child in node.items():
        if name.endswith("_total"):  # a sum of a labelled family that is exposed anyway (outbox.dropped_total)
            continue
        yield from _samples(child, [*path, str(name)], labels)


def render(health: dict[str, Any]) -> str:
    """The exposition text of one health payload: HELP/TYPE per family, then its samples."""
    families: dict[str, list[tuple[tuple[tuple[str, str], ...], float]]] = {}
    kinds: dict[str, str] = {}
    body = {k: v for k, v in health.items() if k not in ("store_id", "terminal_id", "at", "mac", "version")}
    for name, labels, value in _samples(body, [], ()):
        leaf = name.removeprefix(f"{PREFIX}_")
        counter = any(leaf == c or leaf.endswith(f"_{c}") for c in COUNTERS)
        family = f"{name}_total" if counter else name
        kinds[family] = "counter" if counter else "gauge"
        families.setdefault(family, []).append((labels, value))
    terminal = (("store", str(health.get("store_id", ""))), ("terminal", str(health.get("terminal_id", ""))))
    lines = [
        f"# HELP {PREFIX}_info The agent's version; the value is always 1.",
        f"# TYPE {PREFIX}_info gauge",
        f'{PREFIX}_info{{version="{_escape(str(health.get("version", "")))}",'
        f'store="{_escape(terminal[0][1])}",terminal="{_escape(terminal[1][1])}"}} 1',
    ]
    for device, stats in (health.get("devices") or {}).items():
        if isinstance(stats, dict) and "state" in stats:
            families.setdefault(f"{PREFIX}_device_up", []).append(
                ((("device", str(device)), ("state", str(stats["state"]))), 1 if stats["state"] == "online" else 0)
            )
            kinds[f"{PREFIX}_device_up"] = "gauge"
    for family in sorted(families):
        lines.append(f"# HELP {family} health: {family.removeprefix(PREFIX + '_').replace('_', ' ')}")
        lines.append(f"# TYPE {family} {kinds[family]}")
        for labels, value in families[family]:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{family}{{{text}}} {_number(value)}" if text else f"{family} {_number(value)}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` on ``host:port`` in a thread of its own; ``health()`` is called for each scrape."""

    def __init__(self, host: str, port: int, health: Callable[[], dict[str, Any] | None]) -> None:
        source = health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                try:
                    payload = source()
                except Exception:
                    logger.exception("metrics: the health figures could not be computed")
                    payload = None
                if payload is None:
                    self.send_error(503, "the agent is starting")
                    return
                body = render(payload).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("metrics: %s", format % args)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> MetricsServer:
        self.thread.start()
        logger.info("metrics: serving Prometheus metrics on http://%s:%d/metrics", *self.server.server_address[:2])
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
