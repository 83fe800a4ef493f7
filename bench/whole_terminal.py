"""The whole terminal on one board: every pipeline at once in the real daemon, measured from its own health.

    python bench/whole_terminal.py [--seconds 60] [--each] [--cpu-limit] [--breakdown] [--no-whisper]

Starts ``store-agent run`` (a subprocess) against a real mosquitto on a free port, on a config made here with
every pipeline on: face on the entrance camera, people on the entrance and aisle cameras, product on the
entrance camera with the 31-SKU catalogue, speech (PocketSphinx en grammar + Whisper base zh) on a WAV
microphone of real speech with pauses, an ASCII card reader and a barcode scanner replaying taps and scans.
Both cameras are video files replayed in real time at 15 fps, looping. It runs ``--seconds`` after ready,
reads ``health`` over MQTT (what operators see in the field) and prints per pipeline the achieved fps, queue
drops in the measured span, p50/p99 capture-to-event latency (the last 30 s), and for the process RSS (peak and
steady: the median of the second half), CPU in cores, threads and open files.

``--each`` repeats it with each pipeline alone; ``--cpu-limit`` with everything on under a 50% CPU quota (half
of one core, as ``systemd-run -p CPUQuota=50%``): through ``systemd-run --scope`` where systemd runs, else a
cgroup made here (v1 ``cpu`` or v2 ``cpu.max``) where writable, else ``taskset -c 0`` (one whole core: a weaker
limit, and the output says so). ``--breakdown`` prints the RSS of each component loaded in turn
(bench/terminal_memory.py). Needs the shared data (``STORE_AGENT_DATA``) and Whisper base provisioned in
``~/.cache/store-agent/models`` (``bench/speech_rtf.py --engine whisper-zh`` fetches it); without it, or with
``--no-whisper``, speech runs PocketSphinx only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.config.schema import MqttSection  # noqa: E402
from agent.delivery.broker import Mosquitto  # noqa: E402
from agent.delivery.client import Connected, Message, MqttConnection  # noqa: E402

DATA = Path(os.environ.get("STORE_AGENT_DATA", REPO.parent / "shared" / "data")).resolve()
WHISPER = Path.home() / ".cache" / "store-agent" / "models" / "whisper-base-ct2"
PIPELINES = ("face", "people", "product", "speech", "serial")
#: Devices each pipeline reads (serial: the card reader and the scanner, always on in the agent).
DEVICES = {
    "face": {"entrance"},
    "people": {"entrance", "aisle"},
    "product": {"entrance", "till-scanner"},
    "speech": {"mic"},
    "serial": {"desk-rfid", "till-scanner"},
}
CARD_UID = "04A1B2C3D4E580"
CARD_SECRET = "bench-card-secret-0123456789abcdef"
GALLERY_KEY = "0" * 64
SPEECH = ["en/goforward.wav", "zh/funasr_zh.wav", "en/vosk_test_en.wav", "zh/aishell/BAC009S0150W0001.wav"]


def _speech_with_pauses(target: Path) -> None:
    """Real utterances (English and Mandarin) with 3 s of silence after each: what a kiosk microphone hears."""
    params = None
    frames: list[bytes] = []
    for rel in SPEECH:
        with wave.open(str(DATA / "media" / "speech" / rel), "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (16000, 1, 2):
                raise SystemExit(f"{rel}: expected 16 kHz mono 16-bit")
            params = wav.getparams()
            frames += [wav.readframes(wav.getnframes()), b"\0" * 16000 * 2 * 3]
    assert params is not None
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(b"".join(frames))


def prepare_media(work: Path, seconds: float) -> None:
    """Links to the shared media, the microphone WAV, the catalogue, card and scanner scripts for ``seconds``."""
    from agent.identity.cards import card_hash

    m = work / "media"
    if m.exists():
        shutil.rmtree(m)
    m.mkdir(parents=True)
    os.symlink(DATA / "media/video/short_hamilton_clip.mp4", m / "entrance.mp4")
    os.symlink(DATA / "media/video/vtest_pets2009_480x360.avi", m / "aisle.avi")
    _speech_with_pauses(m / "mic.wav")
    products = []
    for i, folder in enumerate(sorted(p for p in (DATA / "media/products/catalog").iterdir() if p.is_dir())):
        target = m / "catalog" / folder.name
        target.mkdir(parents=True)
        os.symlink(folder / "iconic.jpg", target / "iconic.jpg")
        for photo in sorted((DATA / "media/products/shelf" / folder.name).glob("*.jpg"))[:5]:
            os.symlink(photo, target / photo.name)
        products.append({"sku": folder.name, "name": folder.name.replace("-", " "), "price": round(1 + i / 10, 2)})
    (m / "catalog" / "catalog.yaml").write_text(yaml.safe_dump({"currency": "EUR", "products": products}))
    (m / "cards.yaml").write_text(f"{card_hash(CARD_UID, CARD_SECRET.encode())}: m-bench\n")
    repeats = int(seconds / 10) + 30  # startup included
    (m / "desk-rfid.script").write_text(f'wait 10\ntext "{CARD_UID}\\r\\n"\n' * repeats)
    (m / "till-scanner.script").write_text('wait 7\ntext "6901028075763\\r\\n"\n' * (repeats * 10 // 7))


def terminal_config(work: Path, port: int, pipelines: set[str], whisper: bool) -> Path:
    """A store YAML with ``pipelines`` on and only the devices they read."""
    m = work / "media"
    wanted = set().union(*(DEVICES[p] for p in pipelines))
    cameras = [
        {"name": "entrance", "type": "video-file", "path": str(m / "entrance.mp4"), "fps": 15, "loop": True},
        {"name": "aisle", "type": "video-file", "path": str(m / "aisle.avi"), "fps": 15, "loop": True},
    ]
    serial = [
        {"name": "desk-rfid", "type": "ascii-reader", "script": str(m / "desk-rfid.script")},
        {"name": "till-scanner", "type": "barcode", "script": str(m / "till-scanner.script")},
    ]
    recognizers: list[dict[str, Any]] = [{"engine": "pocketsphinx", "mode": "grammar"}]
    if whisper:
        recognizers.append({"engine": "whisper", "model": "whisper-base-ct2", "language": "zh"})
    config: dict[str, Any] = {
        "version": 1,
        "store": {"id": "bench-store", "name": "Bench"},
        "terminal": {"id": "t1"},
        "mqtt": {"host": "127.0.0.1", "port": port, "health_interval_s": 2},
        "storage": {"state_dir": str(work / "state")},
        "models": {"directory": str(work / "models")},
        "logging": {"level": "WARNING"},
        "cameras": [c for c in cameras if c["name"] in wanted],
        "microphones": [{"name": "mic", "type": "wav-file", "path": str(m / "mic.wav"), "loop": True}]
        if "mic" in wanted
        else [],
        "serial": [s for s in serial if s["name"] in wanted],
        "identity": {"cards": {"secret_env": "BENCH_CARD_SECRET", "registry": str(m / "cards.yaml")}},
        "pipelines": {
            "face": {"enabled": "face" in pipelines, "cameras": [c for c in ["entrance"] if c in wanted]},
            "people": {
                "enabled": "people" in pipelines,
                "cameras": [c for c in ["entrance", "aisle"] if c in wanted],
            },
            "product": {
                "enabled": "product" in pipelines,
                "cameras": [c for c in ["entrance"] if c in wanted],
                "scanners": [s for s in ["till-scanner"] if s in wanted],
                "catalog_dir": str(m / "catalog"),
                "zones": [{"name": "till", "camera": "entrance", "kind": "counter"}] if "entrance" in wanted else [],
            },
            "speech": {
                "enabled": "speech" in pipelines,
                "microphones": ["mic"] if "mic" in wanted else [],
                "recognizers": recognizers,
                "intents": [
                    {"name": "go_forward", "phrases": {"en": ["go forward {n} meters"]}, "slots": {"n": ["ten"]}},
                    {"name": "opening_hours", "phrases": {"zh": ["开放时间"]}},
                ],
            },
        },
    }
    models = work / "models"
    models.mkdir(exist_ok=True)
    for source in [*(DATA / "models").iterdir(), *([WHISPER] if whisper else [])]:
        if not (models / source.name).exists():
            os.symlink(source, models / source.name)
    path = work / "terminal.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def unit_environment() -> dict[str, str]:
    """``Environment=`` of systemd/store-agent.service: the daemon here runs with what the unit gives it."""
    found = {}
    for line in (REPO / "systemd" / "store-agent.service").read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            found[key] = value
    return found


def env() -> dict[str, str]:
    return {
        **os.environ,
        **unit_environment(),
        "BENCH_CARD_SECRET": CARD_SECRET,
        "STORE_AGENT_GALLERY_KEY": GALLERY_KEY,
        "PYTHONUNBUFFERED": "1",
    }


def enrol(config: Path) -> None:
    """One member enrolled from real photos, so the gallery (and its memory) is a real one (once per work folder)."""
    marker = config.parent / "enrolled"
    if marker.exists():
        return
    photos = sorted(str(p) for p in (DATA / "media/faces/enroll/obama").glob("*.jpg"))
    subprocess.run(
        [
            *(sys.executable, "-m", "agent", "members", "enroll", "--member-id", "m-bench"),
            *("--consent-ref", "BENCH-1", "--config", str(config), *photos),
        ],
        cwd=REPO,
        env=env(),
        check=True,
        capture_output=True,
    )
    marker.touch()


def build_catalogue(config: Path) -> float:
    """Embed the catalogue once (what the first start after a catalogue change does); its peak RSS in MB."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "catalog", "build", "--config", str(config)],
        cwd=REPO,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    print(
        f"catalogue build (31 SKUs, first start after a change): {time.monotonic() - started:.0f} s, "
        f"peak RSS {usage.ru_maxrss / 1024:.0f} MB"
    )
    return usage.ru_maxrss / 1024


class HealthReader:
    """Every health payload of the terminal, through the agent's own MQTT client module."""

    def __init__(self, port: int) -> None:
        self.conn = MqttConnection(MqttSection(host="127.0.0.1", port=port), f"bench-{os.getpid()}")
        self.topic = "store/bench-store/t1/health"
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self.conn.start()
        if not self.conn.wait_connected(10):
            raise SystemExit(f"bench: cannot connect to the broker: {self.conn.last_error}")

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                item = self.conn.inbox.get(timeout=0.1)
            except Exception:
                continue
            if isinstance(item, Connected):
                self.conn.publish(self.topic, b"", retain=True)  # the previous run's retained health is not ours
                self.conn.subscribe([self.topic, "store/bench-store/t1/events/#"])  # events delivered, not held
            elif isinstance(item, Message) and item.payload and item.topic == self.topic:
                self.seen.append((time.monotonic(), json.loads(item.payload)))

    def close(self) -> None:
        self.conn.stop()


def quota_prefix(cgroup_name: str) -> tuple[list[str], str, Path | None]:
    """How to run the daemon under a 50% CPU quota here: (command prefix, what it is, cgroup to join or None)."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemd-run"):
        return ["systemd-run", "--scope", "--quiet", "-p", "CPUQuota=50%"], "systemd-run CPUQuota=50%", None
    v1 = Path("/sys/fs/cgroup/cpu")
    v2 = Path("/sys/fs/cgroup")
    for root, v2_style in ((v1, False), (v2, True)):
        group = root / cgroup_name
        try:
            if v2_style and not (root / "cgroup.controllers").exists():
                continue
            group.mkdir(exist_ok=True)
            if v2_style:
                (group / "cpu.max").write_text("50000 100000")
            else:
                (group / "cpu.cfs_period_us").write_text("100000")
                (group / "cpu.cfs_quota_us").write_text("50000")
            return [], f"cgroup {group} quota 50%", group
        except OSError:
            continue
    return ["taskset", "-c", "0"], "taskset -c 0 (one core; no CPU quota available here)", None


def run_once(work: Path, port: int, pipelines: set[str], seconds: float, whisper: bool, limit: bool) -> dict[str, Any]:
    """One daemon run; the figures of its health over the measured span."""
    config = terminal_config(work, port, pipelines, whisper)
    prefix, how, group = quota_prefix(f"store-agent-bench-{os.getpid()}") if limit else ([], "none", None)
    state = work / "state"
    for stale in ("outbox.db", "outbox.db-wal", "outbox.db-shm"):
        (state / stale).unlink(missing_ok=True)
    reader = HealthReader(port)
    reader.pump(0.3)
    with (work / "agent.log").open("ab") as log:
        started = time.monotonic()
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "agent", "run", "--config", str(config)],
            cwd=REPO,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=(lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None,
        )
    try:
        while not any(p.get("ready") for _, p in reader.seen):
            if proc.poll() is not None or time.monotonic() - started > 300:
                raise SystemExit(f"bench: the daemon did not become ready; see {work / 'agent.log'}")
            reader.pump(0.5)
        ready_s = time.monotonic() - started
        reader.seen.clear()
        warm_up = min(10.0, seconds / 4)
        reader.pump(warm_up)
        first = reader.seen[-1] if reader.seen else None
        reader.pump(seconds - warm_up)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.close()
        if group is not None:
            with contextlib.suppress(OSError):
                group.rmdir()
    return summarise(reader.seen, first, ready_s, how)


def summarise(
    seen: list[tuple[float, dict[str, Any]]], start: tuple[float, dict[str, Any]] | None, ready_s: float, how: str
) -> dict[str, Any]:
    """Per pipeline figures of the last health, counters as differences from ``start`` (after the warm-up)."""
    if not seen or start is None or seen[-1][0] <= start[0]:
        raise SystemExit("bench: no health received while measuring")
    first, last = start[1], seen[-1][1]
    span_s = seen[-1][0] - start[0]
    pipelines = {}
    for name, worker in last["pipelines"].items():
        before = first["pipelines"].get(name, {})
        pipelines[name] = {
            "fps": worker.get("fps"),
            "source_fps": worker.get("source_fps"),
            "drops": worker.get("dropped", 0) - before.get("dropped", 0),
            "p50_ms": worker.get("latency_ms", {}).get("p50"),
            "p99_ms": worker.get("latency_ms", {}).get("p99"),
            "busy_share": round((worker["busy_s"] - before.get("busy_s", 0.0)) / span_s, 3),
        }
    rss = [p["system"]["rss_bytes"] for _, p in seen if p["system"].get("rss_bytes")]
    half = rss[len(rss) // 2 :] or rss
    quarter = rss[len(rss) // 4]  # flatness: growth from a quarter of the run (warmed up) to its end
    cpu = (last["system"]["cpu_s"] - first["system"]["cpu_s"]) / span_s
    return {
        "pipelines": pipelines,
        "ready_s": round(ready_s, 1),
        "rss_peak_mb": round(last["system"]["rss_peak_bytes"] / 2**20),
        "rss_steady_mb": round(statistics.median(half) / 2**20),
        "rss_first_mb": round(rss[0] / 2**20),
        "rss_last_mb": round(rss[-1] / 2**20),
        "rss_growth_pct": round(100.0 * (rss[-1] - quarter) / quarter, 2),
        "rss_series_mb": [round(r / 2**20, 1) for r in rss],
        "cpu_cores": round(cpu, 2),
        "cpu_count": last["system"].get("cpu_count"),
        "threads": last["system"].get("threads"),
        "open_fds": last["system"].get("open_fds"),
        "degraded": last.get("degraded", []),
        "limit": how,
    }


def report(title: str, result: dict[str, Any]) -> None:
    r = result
    print(
        f"{title}: RSS peak {r['rss_peak_mb']} MB, steady {r['rss_steady_mb']} MB "
        f"({r['rss_first_mb']} -> {r['rss_last_mb']}, {r['rss_growth_pct']:+.1f}% over the last 3/4); "
        f"CPU {r['cpu_cores']} cores of {r['cpu_count']}; "
        f"threads {r['threads']}, open fds {r['open_fds']}; ready in {r['ready_s']} s"
        + (f"; limit: {r['limit']}" if r["limit"] != "none" else "")
        + (f"; degraded: {r['degraded']}" if r["degraded"] else "")
    )
    for name, p in sorted(r["pipelines"].items()):
        print(
            f"  {name:22} {p['fps'] or 0:5.1f} of {p['source_fps'] or 0:5.1f} fps, drops {p['drops']:4d}, "
            f"latency p50 {p['p50_ms']} ms p99 {p['p99_ms']} ms, busy {p['busy_share']:.2f}"
        )


def breakdown(config: Path) -> dict[str, Any]:
    """RSS added by each component, loaded in turn in a fresh process (bench/terminal_memory.py)."""
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "terminal_memory.py"), "--config", str(config)],
        cwd=REPO,
        env=env(),
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"RSS by component (MB added, in load order; {result['total_mb']} MB in all):")
    for label, mb in result["rows"]:
        print(f"  {label:48} {mb:7.1f}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time after ready")
    parser.add_argument("--each", action="store_true", help="also each pipeline alone")
    parser.add_argument("--cpu-limit", action="store_true", help="also everything on under a 50%% CPU quota")
    parser.add_argument("--breakdown", action="store_true", help="also the RSS of each component")
    parser.add_argument("--no-whisper", action="store_true", help="speech with PocketSphinx only")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--work", type=Path, help="keep media and state here (the catalogue is embedded once)")
    args = parser.parse_args()
    whisper = WHISPER.is_dir() and not args.no_whisper
    if not whisper and not args.no_whisper:
        print(f"bench: Whisper base not provisioned at {WHISPER}: speech runs PocketSphinx only", file=sys.stderr)
    results: dict[str, Any] = {}
    print(
        f"# whole terminal, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, {args.seconds:.0f} s measured, "
        f"whisper {'base' if whisper else 'off'}"
    )
    with tempfile.TemporaryDirectory(prefix="whole-terminal-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        prepare_media(work, args.seconds)
        broker = Mosquitto(work / "mosquitto").start()
        try:
            everything = terminal_config(work, broker.port, set(PIPELINES), whisper)
            enrol(everything)
            results["catalogue_build_peak_mb"] = build_catalogue(everything)
            runs: list[tuple[str, set[str], bool]] = [("all on", set(PIPELINES), False)]
            if args.each:
                runs += [(f"{p} alone", {p}, False) for p in PIPELINES]
            if args.cpu_limit:
                runs.append(("all on, CPU-limited", set(PIPELINES), True))
            for title, pipelines, limit in runs:
                results[title] = run_once(work, broker.port, pipelines, args.seconds, whisper, limit)
                report(title, results[title])
            if args.breakdown:
                results["breakdown"] = breakdown(terminal_config(work, broker.port, set(PIPELINES), whisper))
        finally:
            broker.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
