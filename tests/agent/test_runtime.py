"""The pipeline runtime: sources, queues, workers and the agent, on real drivers and real frames."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest

from agent.backoff import Backoff
from agent.config.loader import LoadedConfig, parse_config
from agent.events import EventBody
from agent.pipelines.stage import Stage
from agent.runtime.agent import Agent
from agent.runtime.queues import DropPolicy, StageQueue
from agent.runtime.sink import MemorySink
from agent.runtime.source import SourceRunner
from agent.runtime.state import StateStore
from agent.runtime.worker import Worker
from agent.schemas import validate_payload
from drivers.base import DeviceState, Frame
from drivers.camera.pattern import TestPatternCamera, TestPatternOptions
from drivers.camera.replay import VideoFileCamera, VideoFileOptions
from tests.conftest import REPO
from tests.media import config_text, write_video, write_wav


def loaded(tmp_path: Path, body: str) -> LoadedConfig:
    config = parse_config(config_text(tmp_path / "state", body), base_dir=tmp_path)
    return LoadedConfig(config=config, path=tmp_path / "store.yaml", sha256="0" * 64)


def test_replay_runs_to_the_end_with_valid_events(tmp_path: Path) -> None:
    sink = MemorySink()
    agent = Agent(
        loaded(
            tmp_path,
            "cameras:\n  - {name: door, type: test-pattern, frames: 200, realtime: false, width: 320, height: 240}\n"
            "pipelines:\n  motion: {enabled: true}\n",
        ),
        sink,
        replay=True,
    )
    with agent:
        assert agent.wait_finished(timeout=60)
    assert sink.closed
    types = [e.type for e in sink.events]
    states = [e.body.state for e in sink.events if e.type == "device.state"]  # type: ignore[attr-defined]
    assert states == ["online", "finished"]
    motion = [e.body.state for e in sink.events if e.type == "scene.motion"]  # type: ignore[attr-defined]
    assert motion and motion[0] == "started" and motion.count("started") == motion.count("ended")
    assert [e.seq for e in sink.events] == sorted(e.seq for e in sink.events)
    assert len({e.event_id for e in sink.events}) == len(sink.events)
    for event in sink.events:
        validate_payload(event.to_payload())
    health = agent.health()
    assert health["devices"]["door"]["items"] == 200
    assert health["pipelines"]["motion/door"]["processed"] >= 200
    assert health["pipelines"]["motion/door"]["queue"]["dropped"] == {}  # replay is lossless
    assert types.count("scene.motion") == len(motion)


class SlowPipeline(Stage[Frame]):
    """A stage slower than its camera, to overload the worker."""

    def __init__(self) -> None:
        super().__init__("slow", "cam")
        self.seqs: list[int] = []

    def process(self, item: Frame) -> Iterable[EventBody]:
        time.sleep(0.05)
        self.seqs.append(item.capture.seq)
        return []


def test_overloaded_video_worker_drops_stale_frames_and_counts_them() -> None:
    stop = threading.Event()
    camera = TestPatternCamera(TestPatternOptions(name="cam", type="test-pattern", fps=100, width=160, height=120))
    queue: StageQueue[Frame] = StageQueue("slow/cam", 2, DropPolicy.LATEST_WINS)
    pipeline = SlowPipeline()
    states: list[str] = []
    source = SourceRunner("camera", camera, [queue], stop, lambda n, k, s, p, r: states.append(s.value))
    worker = Worker(pipeline, queue, lambda body: None, stop)
    worker.start()
    source.start()
    time.sleep(1.5)
    stop.set()
    source.thread.join(5)
    worker.thread.join(5)
    stats = queue.stats()
    assert stats["dropped"].get("stale", 0) > 0
    assert stats["in"] == source.items
    assert stats["in"] == stats["out"] + stats["dropped"]["stale"] + stats["depth"]
    assert worker.processed - 1 == len(pipeline.seqs)  # plus the finish() step
    assert pipeline.seqs == sorted(pipeline.seqs)
    assert max(pipeline.seqs) > len(pipeline.seqs)  # it skipped to fresh frames rather than lagging
    assert states[0] == "online"


def test_failed_device_goes_offline_and_is_reopened(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.avi", frames=5)
    options = VideoFileOptions(name="cam", type="video-file", path=clip, realtime=False, loop=True)
    hidden = tmp_path / "hidden.avi"
    clip.rename(hidden)  # the device is absent at start
    stop = threading.Event()
    changes: list[tuple[str, str | None]] = []
    source = SourceRunner(
        "camera",
        VideoFileCamera(options),
        [],
        stop,
        lambda n, k, s, p, r: changes.append((s.value, r)),
        Backoff(initial_s=0.05, cap_s=0.2),
    )
    source.start()
    deadline = time.monotonic() + 5
    while not changes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert changes[0][0] == "offline" and "cannot open video file" in (changes[0][1] or "")
    hidden.rename(clip)  # plugged in
    while source.state is not DeviceState.ONLINE and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    source.thread.join(5)
    assert source.state is DeviceState.ONLINE or ("online", None) in changes
    assert source.errors >= 1 and source.items > 0


def test_sequence_keeps_rising_across_restarts(tmp_path: Path) -> None:
    first = StateStore(tmp_path)
    seqs = [first.next_seq() for _ in range(5)]
    second = StateStore(tmp_path)  # a restart (or a crash: nothing else was written)
    later = second.next_seq()
    assert seqs == [1, 2, 3, 4, 5]
    assert later > seqs[-1]
    assert second.boot_count == first.boot_count + 1


def test_shared_services_exist_before_any_pipeline_and_erasure_reaches_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What pipelines share is built from the config alone: links are there whatever is built first, optional
    ones only when their owner is on, and an erasure reaches every one that holds a member."""
    from agent.identity import enrollment
    from agent.pipelines.people.reid import LostMember
    from agent.runtime.wiring import build_shared

    plain = loaded(tmp_path, "").config
    with ExitStack() as stack:
        shared = build_shared(plain, stack)
        assert shared.gallery is None and shared.tracks is None and shared.cards is None
        shared.presence.seen("m-1")
        shared.identities.assign_identity("door", "p-1", "m-1", "face", 0.9)
        appearance = np.ones(4, np.float32) / 2
        shared.reid.add_lost(LostMember("door", "p-0", "m-1", appearance, None, (0.5, 0.5), (0.0, 0.0), 0.0))
        hooks = len(enrollment._hooks)
        assert hooks >= 3
        for hook in list(enrollment._hooks):
            hook("m-1")
        assert shared.presence.current() is None
        assert shared.identities.member_of("door", "p-1") is None
        assert not shared.reid.pending()
    assert len(enrollment._hooks) == hooks - 3, "closing the shared services unregisters their erasure hooks"

    monkeypatch.setenv("STORE_AGENT_GALLERY_KEY", "ab" * 32)
    everything = loaded(
        tmp_path,
        f"models: {{directory: {tmp_path / 'models'}}}\n"
        "pipelines:\n  face: {enabled: true}\n  product: {enabled: true, catalog_dir: catalog}\n",
    ).config
    with ExitStack() as stack:
        shared = build_shared(everything, stack)
        assert shared.gallery is not None and shared.tracks is not None
        gallery = shared.gallery
    with pytest.raises(Exception, match="closed"):
        gallery.members()


def _runner(camera: TestPatternCamera, states: list[tuple[str, str | None]]) -> SourceRunner:
    return SourceRunner(
        "camera",
        camera,
        [],
        threading.Event(),
        lambda n, k, s, p, r: states.append((s.value, r)),
        Backoff(initial_s=5.0, cap_s=5.0),  # no reopen within the test
    )


def test_stale_after_and_read_timeout_on_a_camera_gone_quiet() -> None:
    """A camera that delivers one frame and then nothing for 4 s (a 0.25 fps pattern): with ``stale_after_s``
    1 it is offline after about a second (and the watchdog turns false); with 10 it stays online. Reads wait at
    most ``read_timeout_s``, which is how soon a stop is noticed on a quiet device."""

    def camera(**settings: float) -> TestPatternCamera:
        return TestPatternCamera(TestPatternOptions(name="cam", type="test-pattern", fps=0.25, **settings))  # type: ignore[arg-type]

    quick: list[tuple[str, str | None]] = []
    runner = _runner(camera(stale_after_s=1.0, read_timeout_s=0.2), quick)
    runner.start()
    time.sleep(0.5)
    assert runner.watchdog_ok()
    time.sleep(1.0)
    assert quick[:2] == [("online", None), ("offline", "no data for 1 s")], quick
    assert not runner.watchdog_ok()
    runner.stop.set()
    runner.thread.join(10)

    def stop_latency(read_timeout_s: float, states: list[tuple[str, str | None]]) -> float:
        runner = _runner(camera(stale_after_s=10.0, read_timeout_s=read_timeout_s), states)
        runner.start()
        time.sleep(1.2)  # the first frame at once, then a read waiting up to read_timeout_s, then the next
        stopped = time.monotonic()
        runner.stop.set()
        runner.thread.join(10)
        return time.monotonic() - stopped

    patient: list[tuple[str, str | None]] = []
    slow_stop = stop_latency(1.0, patient)  # stopped 0.2 s into a 1 s read
    assert patient == [("online", None)], "10 s without data is not stale yet"
    quick_stop = stop_latency(0.1, [])
    assert quick_stop < 0.4 and slow_stop > 0.6, (quick_stop, slow_stop)


def _example(tmp_path: Path) -> LoadedConfig:
    """config/store-example.yaml as shipped, its state kept in ``tmp_path``."""
    text = (REPO / "config" / "store-example.yaml").read_text(encoding="utf-8")
    text = text.replace("state_dir: /var/lib/store-agent", f"state_dir: {tmp_path / 'state'}")
    config = parse_config(text, base_dir=REPO / "config")
    return LoadedConfig(config=config, path=REPO / "config" / "store-example.yaml", sha256="0" * 64)


def test_the_example_opens_only_its_enabled_devices_and_runs_only_its_enabled_pipelines(tmp_path: Path) -> None:
    """The example lists a device of every type but enables one (``enabled``), and enables the motion pipeline
    only: the agent opens that one device, under its ``name``, and builds motion stages only; the disabled
    entries name files that do not exist and are never opened."""
    sink = MemorySink()
    with Agent(_example(tmp_path), sink) as agent:
        deadline = time.monotonic() + 30
        while "scene.motion" not in agent.emitted and time.monotonic() < deadline:
            time.sleep(0.1)
        names = [s.name for s in agent.sources]
        stages = sorted(f"{s.name}/{s.source}" for s in agent.stages)
        health = agent.health()
    assert names == ["entrance"] and stages == ["motion/entrance"]
    assert health["devices"]["entrance"]["description"] == "test-pattern 640x480@10"
    motion = [e.body for e in sink.events if e.type == "scene.motion"]
    assert motion and {b.camera for b in motion} == {"entrance"}  # type: ignore[attr-defined]
    states = [e.body for e in sink.events if e.type == "device.state"]
    assert {b.device for b in states} == {"entrance"}  # type: ignore[attr-defined]


def test_pipelines_take_only_the_sources_they_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``cameras`` (motion, face, people, product), ``microphones`` (speech) and ``scanners`` (product) pick the
    sources a pipeline builds stages for; an empty list means every enabled source of the kind."""
    from agent.pipelines.registry import configurable
    from agent.runtime.wiring import build_shared
    from tests.conftest import require_data

    models = require_data("models")
    monkeypatch.setenv("STORE_AGENT_GALLERY_KEY", "ab" * 32)
    wav = write_wav(tmp_path / "quiet.wav", 0.5, 16000)
    (tmp_path / "scan.script").write_text('text "4006381333931\\r\\n"\n')
    devices = (
        "cameras:\n"
        "  - {name: door, type: test-pattern}\n"
        "  - {name: till, type: test-pattern}\n"
        "microphones:\n"
        f"  - {{name: counter, type: wav-file, path: {wav}}}\n"
        f"  - {{name: desk, type: wav-file, path: {wav}}}\n"
        "serial:\n"
        "  - {name: scanner-a, type: barcode, script: scan.script}\n"
        "  - {name: scanner-b, type: barcode, script: scan.script}\n"
        f"models: {{directory: {models}}}\n"
    )

    def sources(pipelines: str) -> dict[str, list[str]]:
        config = loaded(tmp_path, devices + "pipelines:\n" + pipelines).config
        sections = config.pipelines.sections()
        out: dict[str, list[str]] = {}
        with ExitStack() as stack:
            shared = build_shared(config, stack)
            for plugin in configurable():
                if sections[plugin.name].enabled:
                    out[plugin.name] = sorted(s.source for s in plugin.builder()(sections[plugin.name], shared))
        return out

    listed = sources(
        "  motion: {enabled: true, cameras: [till]}\n"
        "  face: {enabled: true, cameras: [door]}\n"
        "  people: {enabled: true, cameras: [till]}\n"
        "  speech: {enabled: true, microphones: [desk], recognizers: [{engine: pocketsphinx}],"
        " intents: [{name: hello, phrases: {en: [hello]}}]}\n"
        f"  product: {{enabled: true, cameras: [door], scanners: [scanner-b], catalog_dir: {tmp_path}}}\n"
    )
    assert listed == {
        "motion": ["till"],
        "face": ["door"],
        "people": ["till"],
        "speech": ["desk"],
        "product": ["door", "scanner-b"],
    }
    every = sources(
        "  motion: {enabled: true}\n  face: {enabled: true}\n  people: {enabled: true}\n"
        "  speech: {enabled: true, recognizers: [{engine: pocketsphinx}],"
        " intents: [{name: hello, phrases: {en: [hello]}}]}\n"
        f"  product: {{enabled: true, catalog_dir: {tmp_path}}}\n"
    )
    assert every == {
        "motion": ["door", "till"],
        "face": ["door", "till"],
        "people": ["door", "till"],
        "speech": ["counter", "desk"],
        "product": ["door", "till"],  # scanners are tied in only when listed
    }
