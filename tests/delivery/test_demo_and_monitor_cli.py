"""The README's demo command and the operator's ``monitor`` command, as real processes against real brokers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agent.delivery.broker import Mosquitto, free_port
from agent.schemas import validate_payload
from tests.conftest import require_data
from tests.delivery.conftest import PATTERN_CAMERA, REPO, Listener, need_mosquitto, write_config

DEMO_EVENTS = 11  # 3 barcodes, 4 motion start/end, 4 device states: config/demo.yaml is deterministic


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def demo_copy(tmp_path: Path, port: int) -> Path:
    """config/demo.yaml with its byte script beside it, its state in tmp_path and its broker on ``port``."""
    shutil.copytree(REPO / "config" / "demo", tmp_path / "demo")
    data = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    data["storage"]["state_dir"] = str(tmp_path / "state")
    data["mqtt"] = {"host": "127.0.0.1", "port": port}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_demo_starts_its_own_broker_when_none_answers_and_everything_arrives(tmp_path: Path) -> None:
    need_mosquitto()
    closed = free_port()
    result = cli("demo", "--config", str(demo_copy(tmp_path, closed)))
    assert result.returncode == 0, result.stderr
    assert f"demo: no broker at 127.0.0.1:{closed}; started mosquitto on 127.0.0.1:" in result.stderr
    assert f"demo: {DEMO_EVENTS} events accepted, all delivered; the monitor saw {DEMO_EVENTS}" in result.stderr
    lines = result.stdout.splitlines()
    assert sum(" barcode.scanned " in line for line in lines) == 3
    assert any("STATUS ONLINE" in line for line in lines) and "STATUS OFFLINE (stopped)" in lines[-1]


def test_demo_uses_a_broker_that_answers(tmp_path: Path, broker: Mosquitto) -> None:
    result = cli("demo", "--config", str(demo_copy(tmp_path, broker.port)))
    assert result.returncode == 0, result.stderr
    assert f"demo: using the broker at 127.0.0.1:{broker.port}" in result.stderr
    assert f"the monitor saw {DEMO_EVENTS}" in result.stderr


def test_monitor_is_a_persistent_subscriber_that_prints_one_terminals_events(tmp_path: Path, broker: Mosquitto) -> None:
    """Subscribe once, stay away while two terminals replay, come back: this terminal's events, each once."""
    demo = demo_copy(tmp_path, broker.port)
    session = ["monitor", "--config", str(demo), "--terminal", "entrance-1", "--client-id", "test-monitor-json"]
    first = cli(*session, "--timeout", "2")
    assert first.returncode == 0 and "monitor: 0 events, 0 duplicates" in first.stderr, first.stderr
    # Another terminal of the same store, filtered out by --terminal; then the demo terminal itself.
    (tmp_path / "other").mkdir()
    other = write_config(
        tmp_path / "other",
        broker.port,
        store={"id": "demo-store", "name": "Demo"},
        cameras=[{**PATTERN_CAMERA, "frames": 60, "realtime": False}],
        pipelines={"motion": {"enabled": True}},
    )
    # Nobody subscribes to the other terminal's topics: its events are not delivered (PUBACK 0x10), they stay.
    unheard = cli("replay", "--config", str(other), "--timeout", "5")
    assert unheard.returncode == 69 and "not acknowledged" in unheard.stderr, unheard.stderr
    replayed = cli("replay", "--config", str(demo))
    assert replayed.returncode == 0, replayed.stderr
    back = cli(*session, "--json", "--count", str(DEMO_EVENTS), "--timeout", "60")
    assert back.returncode == 0, back.stderr
    events = [json.loads(line) for line in back.stdout.splitlines()]
    assert len(events) == DEMO_EVENTS and len({e["event_id"] for e in events}) == DEMO_EVENTS
    for event in events:
        validate_payload(event)
        assert event["store_id"] == "demo-store" and event["terminal_id"] == "entrance-1"
    assert [e["code"] for e in events if e["type"] == "barcode.scanned"] == [
        "6901028075763",
        "6901028075770",
        "4006381333931",
    ]
    assert f"monitor: {DEMO_EVENTS} events, 0 duplicates" in back.stderr
    nothing_more = cli(*session, "--count", "1", "--timeout", "1")
    assert nothing_more.returncode == 1 and "--count 1 not reached within --timeout 1 s" in nothing_more.stderr


def test_replay_without_a_broker_keeps_the_events_and_delivers_them_on_the_next_run(tmp_path: Path) -> None:
    need_mosquitto()
    port = free_port()
    demo = demo_copy(tmp_path, port)
    away = cli("replay", "--config", str(demo), "--timeout", "5")
    assert away.returncode == 69, away.stderr
    assert f"replay: {DEMO_EVENTS} events not acknowledged by 127.0.0.1:{port}" in away.stderr
    assert "they stay in the outbox" in away.stderr
    broker = Mosquitto(tmp_path / "mosquitto", port=port).start()
    try:
        session = ["monitor", "--config", str(demo), "--client-id", "test-monitor-later"]
        assert cli(*session, "--timeout", "2").returncode == 0
        again = cli("replay", "--config", str(demo), "--print-events")
        assert again.returncode == 0, again.stderr
        assert f"{DEMO_EVENTS} accepted" in again.stderr and f"all delivered to 127.0.0.1:{port}" in again.stderr
        printed = [json.loads(line) for line in again.stdout.splitlines()]
        assert len(printed) == DEMO_EVENTS  # --print-events shows this run's events as they are accepted
        back = cli(*session, "--json", "--count", str(2 * DEMO_EVENTS), "--timeout", "60")
        events = [json.loads(line) for line in back.stdout.splitlines()]
        assert len({e["event_id"] for e in events}) == 2 * DEMO_EVENTS, back.stderr
        assert {e["event_id"] for e in printed} < {e["event_id"] for e in events}
        # The per-terminal seq goes on across runs (a restart skips to the next reserved block, never reuses one).
        first_run = sorted(e["seq"] for e in events if e["event_id"] not in {p["event_id"] for p in printed})
        assert first_run == list(range(1, DEMO_EVENTS + 1))
        assert min(p["seq"] for p in printed) > DEMO_EVENTS
    finally:
        broker.stop()


def test_replay_timeout_and_sigterm_before_the_sources_end(tmp_path: Path, broker: Mosquitto) -> None:
    """A real-time source that outlasts --timeout exits 1; SIGTERM exits 130; what was accepted is delivered."""
    camera = {**PATTERN_CAMERA, "frames": 600, "realtime": True}  # 60 s at 10 fps
    config = write_config(  # its own terminal id: the retained status it leaves must not meet other tests
        tmp_path,
        broker.port,
        terminal={"id": "replay-timeout"},
        cameras=[camera],
        pipelines={"motion": {"enabled": True}},
    )
    timed_out = cli("replay", "--config", str(config), "--timeout", "3")
    assert timed_out.returncode == 1, timed_out.stderr
    assert "replay: --timeout 3 s came before every source was exhausted" in timed_out.stderr

    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "replay", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "daemon ready" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 5.0
    assert "replay: stopped before every source was exhausted" in err


def test_the_product_demo_shows_every_pipeline_on_real_media(tmp_path: Path, broker: Mosquitto) -> None:
    """`store-agent demo` with the models and the shared media: a member enrolled from photos and identified at the
    kiosk, a stranger, the door line and the queue, a spoken request carrying the member, a product, a card; every
    event reaches the monitor and is schema-valid, and the demo says what it used."""
    require_data("models")
    require_data("media")
    pytest.importorskip("pocketsphinx")
    work = tmp_path / "mission"
    listener = Listener(broker.port, ["store/demo-store/entrance-1/events/#"], "mission-events")
    result = cli(
        "demo", "--broker", f"127.0.0.1:{broker.port}", "--mission-dir", str(work), "--models",
        str(require_data("models")), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    for used in ("media/faces/enroll/obama", "short_hamilton_clip.mp4", "vtest_pets2009_480x360.avi", "goforward.wav"):
        assert used in result.stderr, used
    assert "enrolled m-obama (consent DEMO-CONSENT-1) from 2 photo(s)" in result.stderr
    assert result.stderr.count("demo:   [x] ") == 7 and "NOT shown" not in result.stderr
    lines = result.stdout.splitlines()
    for text in (
        'shopper.identified member_id="m-obama"',
        'visitor.seen visitor_id="v-',
        'person.entered camera="street" line="door"',
        'queue.length camera="street" zone="kerb"',
        'speech.intent intent="go_forward"',
        'product.recognized sku="Arla-Ecological-Medium-Fat-Milk"',
        'card.tapped device="desk-rfid" member_id="m-obama"',
    ):
        assert any(text in line for line in lines), text
    assert any("speech.intent" in line and 'member_id="m-obama"' in line for line in lines)
    assert (work / "demo-mission.yaml").is_file() and (work / "media" / "kiosk").is_dir()
    accepted = int(result.stderr.split(" events accepted")[0].rsplit("demo: ", 1)[1])
    try:
        assert listener.wait(lambda m: len({p["event_id"] for _, p in m}) >= accepted, timeout=30)
        for _, payload in listener.messages:
            validate_payload(payload)
        assert {p["type"] for _, p in listener.messages} >= {
            "shopper.identified", "visitor.seen", "person.entered", "queue.length", "speech.intent",
            "product.recognized", "card.tapped", "barcode.scanned",
        }  # fmt: skip
    finally:
        listener.close()


def test_without_the_models_the_demo_names_the_command_and_runs_the_basic_one(tmp_path: Path) -> None:
    need_mosquitto()
    empty = tmp_path / "no-models"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--models", str(empty), "--mission-dir", str(tmp_path / "m"),
         "--broker", f"127.0.0.1:{free_port()}", "--timeout", "120"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "STORE_AGENT_DATA": str(tmp_path / "no-data")},
    )  # fmt: skip
    assert "the product demo needs the models face_detection_yunet_2023mar_dynamic" in result.stderr
    assert "`store-agent models fetch face_detection_yunet_2023mar_dynamic" in result.stderr
    assert f"--dir {empty}`" in result.stderr
    assert (
        "running the basic demo instead" in result.stderr and "examples/demo.yaml" in result.stderr
    )  # the shipped config
    assert result.returncode == 0, result.stderr
    assert f"{DEMO_EVENTS} events accepted, all delivered" in result.stderr
    assert not (tmp_path / "m").exists(), "nothing is prepared for a mission that cannot run"


def test_monitor_lines_mark_times_from_an_unsynchronised_clock() -> None:
    """The envelope stays out of the line; a terminal that did not know the time gets ``~`` before it."""
    from agent.cli.monitor_cmd import event_line

    payload = {
        "schema_version": 1, "type": "card.tapped", "event_id": "e1", "store_id": "s", "terminal_id": "t", "seq": 7,
        "captured_at": "2026-11-26T05:00:51.326Z", "emitted_at": "2026-11-26T05:00:51.400Z", "device": "desk-rfid",
    }  # fmt: skip
    synced = event_line("t", {**payload, "clock_synced": True}, duplicate=False)
    assert synced == '2026-11-26T05:00:51.400Z t #7 card.tapped device="desk-rfid"'
    unsynced = event_line("t", {**payload, "clock_synced": False}, duplicate=True)
    assert unsynced == '~2026-11-26T05:00:51.400Z t #7 card.tapped (duplicate) device="desk-rfid"'
