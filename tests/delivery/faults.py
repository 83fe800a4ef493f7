"""Fault scenarios against a real mosquitto and real files, each measured the same way (tests and bench share them).

*Accepted* is what the outbox took (an extra sink behind the outbox records every event whose ``accept``
returned, as ``tests/delivery/producer.py`` does for the SIGKILL runs), *delivered* what a hub received (its
event ids, de-duplicated), *lost* = accepted - delivered, *duplicates* = receipts beyond the first, and *time to
recover* runs from the end of the fault (a subscriber appears, space returns, the terminal restarts) until every
event accepted before that moment has arrived.

Small file systems are real: a tmpfs of a few MB (``mount`` needs root), or an ext4 image on a loop device whose
kernel error path remounts it read-only. :class:`Unavailable` says why one cannot be had here; tests skip with it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config.loader import load_config
from agent.delivery.broker import Mosquitto
from agent.delivery.monitor import Monitor
from agent.delivery.outbox import OUTBOX_FILE
from agent.events import Event
from agent.pipelines.serial.events import BarcodeScanned
from agent.runtime.daemon import Daemon
from agent.schemas import validate_payload
from tests.delivery.conftest import REPO, TEST_HUB, registry_for, write_config


class Unavailable(Exception):
    """This machine cannot set the fault up (not root, no loop devices); the message says why."""


@dataclass
class Figures:
    """One fault's outcome, in the units of the issue's table."""

    fault: str
    accepted: int
    delivered: int
    lost: int
    duplicates: int
    recover_s: float | None
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> str:
        recover = "-" if self.recover_s is None else f"{self.recover_s:.1f}"
        notes = "; ".join(f"{k} {v}" for k, v in self.notes.items())
        return (
            f"{self.fault:<44} {self.accepted:>8} {self.delivered:>9} {self.lost:>5} {self.duplicates:>5} "
            f"{recover:>8}  {notes}"
        )


HEADER = f"{'fault':<44} {'accepted':>8} {'delivered':>9} {'lost':>5} {'dups':>5} {'recover':>8}  notes"


class Recorder:
    """Extra sink behind the outbox: the events whose ``accept`` returned, with when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted: list[tuple[float, str]] = []

    def accept(self, event: Event) -> None:
        with self.lock:
            self.accepted.append((time.monotonic(), event.event_id))

    def close(self) -> None:
        return None

    def ids(self, before: float | None = None) -> set[str]:
        with self.lock:
            return {e for t, e in self.accepted if before is None or t <= before}


class Hub:
    """The hub: a persistent Monitor that acknowledges with the hub key (``ack: hub``; ``ack=False`` for a terminal
    in ``ack: broker`` mode), recording every receipt."""

    def __init__(self, config: Any, client_id: str, *, ack: bool = True) -> None:
        self.receipts: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()

        def on_event(terminal: str, payload: dict[str, Any], duplicate: bool) -> None:
            with self.lock:
                self.receipts.append((time.monotonic(), payload["event_id"], payload))

        self.monitor = Monitor(
            config.mqtt,
            config.store.id,
            client_id=client_id,
            ack=ack,
            on_event=on_event,
            hub_key=TEST_HUB,
            registry=registry_for(config),
        ).start()
        if not self.monitor.subscribed.wait(15):
            raise RuntimeError(f"hub did not subscribe: {self.monitor.conn.last_error}")

    def ids(self) -> set[str]:
        with self.lock:
            return {e for _, e, _ in self.receipts}

    def first_seen(self) -> dict[str, float]:
        seen: dict[str, float] = {}
        with self.lock:
            for t, e, _ in self.receipts:
                seen.setdefault(e, t)
        return seen

    def payloads(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for _, _, p in self.receipts if p.get("type") == kind]

    def stop(self) -> None:
        self.monitor.stop()


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def session_saved(workdir: Path, client_id: str, *filters: str) -> bool:
    """Whether mosquitto's persistence file in ``workdir`` holds ``client_id``'s session and its subscriptions.

    A crash keeps only what the last autosave wrote; a test that kills the broker waits for this, not a guess.
    """
    try:
        saved = (workdir / "mosquitto.db").read_bytes()
    except FileNotFoundError:
        return False
    return all(text.encode() in saved for text in (client_id, *filters))


def measure(
    fault: str, accepted: Recorder, receipts: dict[str, float], duplicates: int, since: float | None
) -> Figures:
    ids = accepted.ids()
    delivered = ids & set(receipts)
    recover = None
    if since is not None:
        before = accepted.ids(since)
        times = [receipts[e] for e in before if e in receipts]
        recover = max(0.0, max(times, default=since) - since) if before <= set(receipts) else None
    return Figures(fault, len(ids), len(delivered), len(ids - delivered), duplicates, recover)


def produce(daemon: Daemon, rate: float, stop: threading.Event) -> threading.Thread:
    """Barcode events through ``Agent.emit`` at ``rate`` per second until ``stop``."""

    def run() -> None:
        started, n = time.monotonic(), 0
        while not stop.is_set():
            daemon.agent.emit(BarcodeScanned(captured_at=time.time(), device="till", code=f"{n:013d}"))
            n += 1
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                stop.wait(delay)

    thread = threading.Thread(target=run, name="producer", daemon=True)
    thread.start()
    return thread


def serve(daemon: Daemon, stop: threading.Event) -> threading.Thread:
    """The daemon's main loop (health, storage events, watchdog) in a thread, as ``store-agent run`` has it."""
    thread = threading.Thread(target=daemon.serve, kwargs={"until": stop.is_set}, name="serve", daemon=True)
    thread.start()
    return thread


# --- no subscriber ------------------------------------------------------------------------------------------


def no_subscriber(workdir: Path, away_s: float, *, ack: str = "hub", rate: float = 50.0) -> Figures:
    """Events flow while nobody subscribes for ``away_s``; then the hub subscribes. Nothing may be lost."""
    broker = Mosquitto(workdir / "mosquitto").start()
    try:
        loaded = load_config(
            write_config(workdir, broker.port, terminal={"id": "nosub"}, mqtt={"ack": ack, "hub_ack_timeout_s": 5})
        )
        recorder = Recorder()
        stop = threading.Event()
        with Daemon(loaded, extra_sink=recorder) as daemon:
            assert daemon.publisher.conn.wait_connected(15), daemon.publisher.conn.last_error
            server = serve(daemon, stop)
            producer = produce(daemon, rate, stop)
            time.sleep(away_s)
            waiting = daemon.outbox.rows
            state = daemon.health()["mqtt"]["delivery"]
            appeared = time.monotonic()
            hub = Hub(loaded.config, "hub-nosub", ack=ack == "hub")
            time.sleep(3.0)
            stop.set()
            producer.join()
            server.join()
            delivered = wait_until(lambda: recorder.ids() <= hub.ids() and daemon.outbox.rows == 0, 120)
            mqtt = daemon.publisher.stats()
        hub.stop()
        duplicates = len(hub.receipts) - len(hub.ids())
        figures = measure(
            f"no subscriber {away_s:.0f} s, then one (ack: {ack})", recorder, hub.first_seen(), duplicates, appeared
        )
        figures.notes = {
            "waiting when it came": waiting,
            "health said": repr(state),
            "0x10 PUBACKs": mqtt["no_subscriber"],
            "all delivered": delivered,
        }
        return figures
    finally:
        broker.stop()


# --- a small file system ------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted on ``directory`` (root only)."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        raise Unavailable("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        raise Unavailable(f"mount -t tmpfs refused here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def fill(directory: Path) -> Path:
    """Write a filler file until the file system is full (ENOSPC); returns it (unlink it to free the space)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:  # unbuffered: nothing left to flush (and fail) at close
        for size in (65536, 4096, 1):
            try:
                while f.write(b"\0" * size):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def scanner_script(path: Path, codes: int, interval_s: float) -> Path:
    """A barcode scanner's byte script: ``codes`` scans, ``interval_s`` apart (the serial worker's path)."""
    lines = [f'text "{i:013d}\\r\\n"\nwait {interval_s}' for i in range(codes)]
    path.write_text("\n".join(lines) + "\n")
    return path


def disk_full(workdir: Path, full_s: float, *, size: str = "8m", rate: float = 50.0) -> Figures:
    """A scanner scans at ``rate`` while the state directory's file system is full for ``full_s``; then space
    returns. No thread may die, nothing accepted may be lost, the hub must hear ``storage.state`` full then ok."""
    broker = Mosquitto(workdir / "mosquitto").start()
    try:
        with tmpfs(workdir / "fs", size) as fs:
            codes = int((full_s + 8.0) * rate)
            script = scanner_script(workdir / "scans.script", codes, 1.0 / rate)
            loaded = load_config(
                write_config(
                    workdir,
                    broker.port,
                    terminal={"id": "diskfull"},
                    mqtt={"ack": "hub", "hub_ack_timeout_s": 5},
                    storage={"state_dir": str(fs / "state")},
                    serial=[{"name": "scanner", "type": "barcode", "script": str(script), "verify_ean": False}],
                )
            )
            hub = Hub(loaded.config, "hub-diskfull")
            recorder = Recorder()
            stop = threading.Event()
            with Daemon(loaded, extra_sink=recorder) as daemon:
                server = serve(daemon, stop)
                time.sleep(2.0)
                filler = fill(fs)
                full = wait_until(lambda: daemon.storage.state()[0].value == "full", 15)
                time.sleep(full_s)
                threads = _threads_alive(daemon)
                health = daemon.health()
                heard_full = any(p["state"] == "full" for p in hub.payloads("storage.state"))
                filler.unlink()
                freed = time.monotonic()
                finished = daemon.agent.wait_finished(full_s + 60)
                delivered = wait_until(lambda: recorder.ids() <= hub.ids() and daemon.outbox.rows == 0, 120)
                ok_again = wait_until(lambda: any(p["state"] == "ok" for p in hub.payloads("storage.state")), 30)
                stop.set()
                server.join()
                stats = daemon.outbox.stats()
            hub.stop()
            for payload in hub.payloads("storage.state"):
                validate_payload(payload)  # the schema, on what the hub really received
            scanned = daemon.agent.emitted.get("barcode.scanned", 0)
            figures = measure(
                f"disk full {full_s:.0f} s ({size} tmpfs), then space", recorder, hub.first_seen(), 0, freed
            )
            figures.duplicates = len(hub.receipts) - len(hub.ids())
            figures.notes = {
                "scans": f"{scanned}/{codes}",
                "health said": f"storage {health['storage']['state']!r}, {health['outbox']['pending']} in memory",
                "hub heard full/ok": f"{heard_full}/{ok_again}",
                "threads alive": threads,
                "dropped": stats["dropped_total"],
                "all delivered": full and finished and delivered,
            }
            return figures
    finally:
        broker.stop()


def _threads_alive(daemon: Daemon) -> bool:
    agent = daemon.agent
    return (
        all(w.thread.is_alive() for w in agent.workers)
        and all(s.thread.is_alive() for s in agent.sources)
        and daemon.publisher.alive()
        and daemon.outbox._thread.is_alive()
    )


# --- read-only remount -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def ext4_image(directory: Path, size_mb: int = 32) -> Iterator[Path]:
    """An ext4 file system in a file, on a loop device, mounted with ``errors=remount-ro`` (root only)."""
    if os.geteuid() != 0:
        raise Unavailable("a loop-mounted ext4 image needs root")
    if shutil.which("mkfs.ext4") is None:
        raise Unavailable("mkfs.ext4 is not installed (apt install e2fsprogs)")
    image = directory.with_suffix(".img")
    with image.open("wb") as f:
        f.truncate(size_mb * 2**20)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True)
    if made.returncode != 0:
        raise Unavailable(f"mkfs.ext4 failed: {made.stderr.strip()}")
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-o", "loop,errors=remount-ro", str(image), str(directory)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        raise Unavailable(f"cannot loop-mount an ext4 image here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)
        image.unlink(missing_ok=True)


def remount_read_only(directory: Path) -> None:
    """What the kernel does after an I/O error with ``errors=remount-ro``: ext4's own test switch triggers it."""
    device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(directory)], capture_output=True, text=True)
    name = Path(device.stdout.strip()).name
    trigger = Path(f"/sys/fs/ext4/{name}/trigger_fs_error")
    if not trigger.exists():
        raise Unavailable(f"{trigger} is missing: this kernel cannot simulate an ext4 error")
    trigger.write_text("fault test\n")
    try:
        (directory / "still-writable").write_text("?")
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return
        raise
    raise Unavailable("the kernel did not make the file system read-only")


def read_only(workdir: Path, ro_s: float, *, rate: float = 50.0) -> Figures:
    """The state directory's file system goes read-only under the running terminal (an I/O error with
    ``errors=remount-ro``); it runs on, says so, and its stop stays within systemd's 20 s."""
    broker = Mosquitto(workdir / "mosquitto").start()
    try:
        with ext4_image(workdir / "ext4") as fs:
            loaded = load_config(
                write_config(
                    workdir,
                    broker.port,
                    terminal={"id": "readonly"},
                    mqtt={"ack": "hub", "hub_ack_timeout_s": 5},
                    storage={"state_dir": str(fs / "state")},
                )
            )
            hub = Hub(loaded.config, "hub-readonly")
            recorder = Recorder()
            stop = threading.Event()
            daemon = Daemon(loaded, extra_sink=recorder)
            daemon.start()
            server = serve(daemon, stop)
            producer = produce(daemon, rate, stop)
            time.sleep(1.5)
            went = time.monotonic()
            remount_read_only(fs)
            seen = wait_until(lambda: daemon.storage.state()[0].value == "read-only", 15)
            time.sleep(ro_s)
            threads = _threads_alive(daemon)
            health = daemon.health()
            heard = wait_until(lambda: any(p["state"] == "read-only" for p in hub.payloads("storage.state")), 10)
            stop.set()
            producer.join()
            server.join()
            stopping = time.monotonic()
            daemon.close()
            stop_s = time.monotonic() - stopping
            stats = daemon.outbox.stats()
            time.sleep(1.0)
            hub.stop()
            figures = measure(f"read-only remount for {ro_s:.0f} s, then stop", recorder, hub.first_seen(), 0, None)
            figures.duplicates = len(hub.receipts) - len(hub.ids())
            before = recorder.ids(went)
            figures.notes = {
                "accepted before": len(before),
                "of them delivered": len(before & hub.ids()),
                "health said": f"storage {health['storage']['state']!r}",
                "hub heard it": heard and seen,
                "threads alive": threads,
                "stop took s": round(stop_s, 1),
                "counted unwritable at stop": sum(stats["dropped"].get("unwritable", {}).values()),
            }
            return figures
    finally:
        broker.stop()


# --- SIGTERM on a full disk: the real CLI under systemd's stop timeout ---------------------------------------


def sigterm_on_full_disk(workdir: Path, full_s: float = 5.0, *, rate: float = 100.0) -> Figures:
    """``store-agent run`` (a scanner at ``rate``) on a full tmpfs gets SIGTERM: it must exit 0 within 20 s."""
    broker = Mosquitto(workdir / "mosquitto").start()
    try:
        with tmpfs(workdir / "fs", "4m") as fs:
            script = scanner_script(workdir / "scans.script", int(rate * 600), 1.0 / rate)
            config = write_config(
                workdir,
                broker.port,
                terminal={"id": "sigterm"},
                mqtt={"ack": "hub", "hub_ack_timeout_s": 5},
                storage={"state_dir": str(fs / "state")},
                serial=[{"name": "scanner", "type": "barcode", "script": str(script), "verify_ean": False}],
            )
            loaded = load_config(config)
            hub = Hub(loaded.config, "hub-sigterm")
            log = workdir / "agent.log"
            with log.open("wb") as err, (workdir / "events.jsonl").open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "agent", "run", "--config", str(config), "--print-events"],
                    cwd=REPO,
                    stdout=out,
                    stderr=err,
                )
            try:
                wait_until(lambda: b"daemon ready" in log.read_bytes(), 60)
                time.sleep(1.0)
                filler = fill(fs)
                wait_until(lambda: b"storage full" in log.read_bytes(), 20)
                time.sleep(full_s)
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(60)
                stop_s = time.monotonic() - started
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            filler.unlink()
            time.sleep(1.0)
            hub.stop()
            import json

            accepted = Recorder()
            for line in (workdir / "events.jsonl").read_text().splitlines():
                accepted.accepted.append((0.0, json.loads(line)["event_id"]))
            text = log.read_text(errors="replace")
            lost_line = next((line for line in text.splitlines() if "could not be written and are lost" in line), "")
            figures = measure(f"SIGTERM after {full_s:.0f} s of full disk", accepted, hub.first_seen(), 0, None)
            figures.duplicates = len(hub.receipts) - len(hub.ids())
            figures.notes = {
                "exit": code,
                "stop took s": round(stop_s, 1),
                "tracebacks": text.count("Traceback"),
                "logged as lost": lost_line.split("): ")[-1] if lost_line else "none",
            }
            return figures
    finally:
        broker.stop()


# --- a truncated outbox at start -----------------------------------------------------------------------------


def truncated_outbox(workdir: Path, offsets: int = 10, *, events: int = 10_000, seed: int = 14) -> list[Figures]:
    """A terminal whose outbox holds ``events`` undelivered events is stopped; its outbox is cut at ``offsets``
    random places (fixed seed) and the terminal started on each: what the kept pages hold must reach the hub."""
    broker = Mosquitto(workdir / "mosquitto").start()
    try:
        base = workdir / "base"
        base.mkdir()
        loaded = load_config(
            write_config(base, broker.port, terminal={"id": "cut"}, mqtt={"ack": "hub", "hub_ack_timeout_s": 5})
        )
        recorder = Recorder()
        with Daemon(loaded, extra_sink=recorder) as daemon:  # no hub yet: everything waits in the outbox
            for i in range(events):
                daemon.agent.emit(BarcodeScanned(captured_at=time.time(), device="till", code=f"{i:013d}"))
            assert daemon.outbox.flush(60)
        outbox = Path(loaded.config.storage.state_dir) / OUTBOX_FILE
        size = outbox.stat().st_size
        rng = random.Random(seed)
        results = []
        for offset in sorted(rng.randrange(4096, size) for _ in range(offsets)):
            run = workdir / f"cut-{offset}"
            shutil.copytree(base, run)
            copy = run / "state" / OUTBOX_FILE
            os.truncate(copy, offset)
            cut = load_config(write_config(run, broker.port, terminal={"id": "cut"}, mqtt={"ack": "hub"}))
            hub = Hub(cut.config, f"hub-cut-{offset}")
            started = time.monotonic()
            with Daemon(cut) as daemon:
                stats = daemon.outbox.stats()
                wait_until(lambda: daemon.outbox.rows == 0, 120)
                done = time.monotonic() - started
            hub.stop()
            received = hub.ids()
            accepted = recorder.ids()
            figures = Figures(
                f"outbox cut at {offset:,} of {size:,} bytes",
                len(accepted),
                len(accepted & received),
                len(accepted - received),
                len(hub.receipts) - len(received),
                done,
                {
                    "salvaged": stats["salvaged"],
                    "counted unreadable<=": stats["unreadable"],
                    "not from this run": len(received - accepted),
                },
            )
            results.append(figures)
        return results
    finally:
        broker.stop()


# --- power cut: SIGKILL during commits -----------------------------------------------------------------------


def power_cuts(workdir: Path, kills: int = 20, *, rate: float = 800.0, seed: int = 3) -> Figures:
    """The producer terminal (``tests/delivery/producer.py``, committing all the time at ``rate``) is SIGKILLed at
    ``kills`` random points, restarted each time; a last run drains. Every committed event must arrive."""
    broker = Mosquitto(workdir / "mosquitto").start()
    try:
        config_path = write_config(workdir, broker.port, terminal={"id": "power"}, mqtt={"ack": "hub"})
        config = load_config(config_path).config
        hub = Hub(config, "hub-power")
        accepted_file = workdir / "accepted.txt"
        rng = random.Random(seed)
        command = [sys.executable, "-m", "tests.delivery.producer", "--config", str(config_path)]
        command += ["--accepted", str(accepted_file)]
        integrity = []
        cuts: list[tuple[float, int]] = []  # (when killed, events reported accepted by then)
        starts: list[float] = []
        for _ in range(kills):
            starts.append(time.monotonic())
            proc = subprocess.Popen([*command, "--rate", str(rate)], cwd=REPO, stderr=subprocess.PIPE)
            assert proc.stderr is not None
            proc.stderr.readline()  # "started"
            time.sleep(rng.uniform(0.3, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc.stderr.close()
            cuts.append((time.monotonic(), len(accepted_file.read_text().split())))
            integrity.append(_quick_check(Path(config.storage.state_dir) / OUTBOX_FILE))
        order = accepted_file.read_text().split()
        accepted = set(order)
        starts.append(time.monotonic())
        final = subprocess.Popen([*command, "--count", "0"], cwd=REPO, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: accepted <= hub.ids(), 180)
            final.wait(60)
        finally:
            if final.poll() is None:
                final.kill()
            hub.stop()
        received = hub.ids()
        seen = hub.first_seen()
        recoveries = []
        for (killed, count), restarted in zip(cuts, starts[1:], strict=True):
            left = [seen[e] for e in order[:count] if e in seen and seen[e] > killed]
            recoveries.append(max(left, default=restarted) - restarted)
        recoveries.sort()
        return Figures(
            f"power cut (SIGKILL) at {kills} random points",
            len(accepted),
            len(accepted & received),
            len(accepted - received),
            len(hub.receipts) - len(received),
            max(0.0, recoveries[-1]),
            {
                "median recovery s": round(max(0.0, recoveries[len(recoveries) // 2]), 2),
                "outbox sound after every cut": all(r == "ok" for r in integrity),
                "committed, not yet reported accepted": len(received - accepted),
            },
        )
    finally:
        broker.stop()


def _quick_check(path: Path) -> str:
    import sqlite3

    copy = path.with_name("check.sqlite3")
    for suffix in ("", "-wal"):
        if Path(str(path) + suffix).exists():
            shutil.copy(str(path) + suffix, str(copy) + suffix)
    try:
        with contextlib.closing(sqlite3.connect(copy)) as conn:
            return str(conn.execute("PRAGMA quick_check").fetchone()[0])
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(str(copy) + suffix).unlink(missing_ok=True)
