"""The face pipeline wired into the agent: a full replay, MQTT enrol/erase with a real outbox, fusion, speech hook.

Real models, real photos, a real mosquitto and the real daemon; nothing is
mocked. The full replay is the product's promise: a member enrolled from photos
is identified when they appear on a replayed camera, and nobody else is.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import yaml

from agent.cli import main as cli_main
from agent.config.loader import load_config
from agent.identity.gallery import Gallery
from agent.identity.keys import parse_key
from agent.identity.sync import member_ref
from agent.pipelines.face.events import ShopperIdentified, SpoofSuspected, VisitorSeen
from agent.pipelines.face.resources import gallery_path
from agent.pipelines.face.settings import FaceSettings
from agent.pipelines.face.stage import FaceStage
from agent.runtime.agent import Agent
from agent.runtime.sink import MemorySink
from agent.runtime.wiring import build_shared
from drivers.base import EndOfStream
from drivers.camera.replay import ImageFolderCamera, ImageFolderOptions
from tests.conftest import require_data
from tests.delivery.conftest import hub_pub_file
from tests.face.conftest import imread

MEMBER = "m-obama"


@pytest.fixture
def gallery_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = secrets.token_hex(32)
    monkeypatch.setenv("STORE_AGENT_GALLERY_KEY", key)
    return key


def store_yaml(tmp_path: Path, models_dir: Path, cameras: list[dict[str, Any]], **extra: Any) -> Path:
    data: dict[str, Any] = {
        "version": 1,
        "store": {"id": "s1", "name": "Test store"},
        "terminal": {"id": "t1"},
        "storage": {"state_dir": str(tmp_path / "state")},
        "models": {"directory": str(models_dir)},
        "cameras": cameras,
        "trust": {"hub_keys": [str(hub_pub_file(tmp_path))]},
        **extra,
    }
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def as_camera_frame(photo: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The photo cropped to 4:3 (the top of a portrait, where the head is) and scaled to 640x480.

    (Pasting a small photo on a plain canvas would make a picture-in-a-frame: liveness rightly calls that a spoof.)
    """
    h, w = photo.shape[:2]
    cw, ch = min(w, h * 4 // 3), min(h, w * 3 // 4)
    x, y = (w - cw) // 2, 0
    return np.asarray(cv2.resize(photo[y : y + ch, x : x + cw], (640, 480), interpolation=cv2.INTER_AREA), np.uint8)


def door_folder(tmp_path: Path) -> Path:
    """The member (a probe photo, not an enrolment photo) for 1.6 s, an empty doorway, then a stranger; 5 fps."""
    probe = require_data("media/faces/probe")
    folder = tmp_path / "door"
    folder.mkdir()
    frames = [as_camera_frame(imread(probe / "obama_a.jpg"))] * 8
    frames += [np.full((480, 640, 3), 60, np.uint8)] * 12  # the member leaves: 2.4 s without a face ends the track
    frames += [as_camera_frame(imread(probe / "biden_a.jpg"))] * 8
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), frame)
    return folder


def enroll_by_cli(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = sorted(str(p) for p in require_data("media/faces/enroll/obama").glob("*.jpg"))
    code = cli_main(
        ["members", "enroll", "--config", str(config), "--member-id", MEMBER, "--consent-ref", "F-1", *photos]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"enrolled {MEMBER} with 4 template(s) from 2 photo(s)" in out  # each photo and its mirror image


def test_replayed_member_is_identified_and_nobody_else(
    tmp_path: Path, models_dir: Path, gallery_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Enrol from photos with the CLI, replay a door camera (member, then a stranger) and the Hamilton clip
    (Lin-Manuel Miranda frontal, Alex Lacamoire only in profile: neither enrolled) through the whole agent."""
    clip = require_data("media/video/short_hamilton_clip.mp4")
    cameras = [
        {"name": "door", "type": "image-folder", "path": str(door_folder(tmp_path)), "fps": 5, "realtime": False},
        {"name": "stage", "type": "video-file", "path": str(clip), "fps": 10, "realtime": False},
    ]
    config = store_yaml(tmp_path, models_dir, cameras, pipelines={"face": {"enabled": True}})
    enroll_by_cli(config, capsys)
    sink = MemorySink()
    started = time.monotonic()
    with Agent(load_config(config), sink, replay=True) as agent:
        assert agent.wait_finished(timeout=240), "replay did not finish"
        assert agent.shared is not None
        member_now = agent.shared.presence.current()
    bodies = [e.body for e in sink.events]
    identified = [b for b in bodies if isinstance(b, ShopperIdentified)]
    visitors = [b for b in bodies if isinstance(b, VisitorSeen)]
    print(
        f"\nfull replay in {time.monotonic() - started:.1f} s: identified "
        f"{[(b.member_id, b.camera, round(b.confidence, 3), round(b.liveness, 2)) for b in identified]}, "
        f"visitors {[(b.camera, b.frames) for b in visitors]}, "
        f"spoofs {[(b.camera, round(b.score, 2)) for b in bodies if isinstance(b, SpoofSuspected)]}"
    )
    assert [(b.member_id, b.camera) for b in identified] == [(MEMBER, "door")]
    assert identified[0].confidence >= 0.40 and identified[0].liveness >= 0.5
    # The stranger's still photo is judged either an anonymous visitor or a spoof (press photos often look
    # like prints to MiniFASNet); what matters is that nobody but the member is identified.
    door = [b for b in bodies if isinstance(b, VisitorSeen | SpoofSuspected) and b.camera == "door"]
    assert door, [type(b).__name__ for b in bodies]
    assert any(v.camera == "stage" for v in visitors), "Lin-Manuel Miranda is seen, not identified"
    assert member_now == MEMBER, "the speech pipeline's member_at_terminal sees the member"
    for event in sink.events:
        payload = event.to_payload()
        assert not {"embedding", "image", "template"} & set(payload), payload


def test_face_decision_follows_the_person_track(tmp_path: Path, models_dir: Path, gallery_key: str) -> None:
    """With the people pipeline's IdentityFusion present, the member id lands on the person track under the face."""
    config = load_config(store_yaml(tmp_path, models_dir, [], pipelines={"face": {"enabled": True}})).config
    stack = ExitStack()
    shared = build_shared(config, stack)
    assert shared.gallery is not None
    fusion = shared.identities
    pipeline = FaceStage("door", config.pipelines.settings(FaceSettings), shared, shared.gallery)
    pipeline.warm_up()
    from agent.identity.enrollment import enroll_files
    from agent.identity.gallery import Consent

    photos = sorted(str(p) for p in require_data("media/faces/enroll/obama").glob("*.jpg"))
    assert pipeline.analyzer is not None
    enroll_files(pipeline.gallery, pipeline.analyzer, MEMBER, Consent("F-2"), photos, 0.5)
    camera = ImageFolderCamera(
        ImageFolderOptions(name="door", type="image-folder", path=door_folder(tmp_path), realtime=False)
    )
    events = []
    with camera:
        for index in range(1000):
            # the people pipeline's view: person p-7 in the doorway, then nobody, then person p-8
            fusion.publish_tracks("door", {"p-7": (150.0, 0.0, 560.0, 480.0)} if index < 8 else {})
            if index >= 20:
                fusion.publish_tracks("door", {"p-8": (150.0, 0.0, 560.0, 480.0)})
            try:
                frame = camera.read(1.0)
            except EndOfStream:
                break
            if frame is not None:
                events += list(pipeline.process(frame))
    pipeline.close()
    stack.close()
    assert type(events[0]).__name__ == "ShopperIdentified" and len(events) == 2, events
    assert not isinstance(events[1], ShopperIdentified)
    claim = fusion.identity("door", "p-7")
    assert claim is not None and claim.member_id == MEMBER and claim.modalities["face"] >= 0.4
    assert fusion.identity("door", "p-8") is None, "the stranger's person track stays anonymous"


def _jpeg_b64(path: Path, side: int = 480) -> str:
    """What a kiosk sends: the photo scaled to 480 px, JPEG quality 80 (20-40 KB: the command limit is 64 KB)."""
    image = imread(path)
    scale = side / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return base64.b64encode(data.tobytes()).decode("ascii")


def test_mqtt_enroll_list_erase_purges_the_outbox(tmp_path: Path, models_dir: Path, gallery_key: str) -> None:
    """Commands over a real broker against the real daemon; erasure removes exactly the member's queued events."""
    from agent.delivery.broker import Mosquitto
    from agent.runtime.daemon import Daemon
    from tests.delivery.conftest import Listener, need_mosquitto, validator

    need_mosquitto()
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        config = store_yaml(
            tmp_path,
            models_dir,
            [],
            # ack: hub keeps events queued until the hub acknowledges them (no hub here: they stay)
            mqtt={"host": "127.0.0.1", "port": broker.port, "health_interval_s": 5, "ack": "hub"},
        )
        base = "store/s1/t1"
        with Daemon(load_config(config)) as daemon:
            threading.Thread(target=daemon.serve, daemon=True).start()
            listener = Listener(broker.port, [f"{base}/cmd/+/reply"], "face-commands")
            assert daemon.publisher.conn.wait_connected(10)

            def ask(name: str, request: dict[str, Any]) -> dict[str, Any]:
                before = len(listener.messages)
                listener.command(f"{base}/cmd/{name}", request)
                assert listener.wait(lambda m: len(m) > before, timeout=60), f"no reply to {name}"
                reply: dict[str, Any] = listener.messages[before][1]
                validator("command-reply").validate(reply)
                return reply

            try:
                photos = sorted(require_data("media/faces/enroll/obama").glob("*.jpg"))
                consent = {"reference": "F-3", "expires": "2099-12-31"}
                garbage = base64.b64encode(b"not an image").decode()
                for i, photo in enumerate(photos):  # one photo per request: the command payload limit is 64 KB
                    request = {"request_id": f"e{i}", "member_id": MEMBER, "consent": consent}
                    reply = ask("enroll-member", {**request, "images": [_jpeg_b64(photo), garbage]})
                    print(f"\nenroll-member reply: {reply}")
                    assert reply["ok"] and reply["request_id"] == f"e{i}", reply
                    verdicts = reply["result"]["images"]
                    assert [v["accepted"] for v in verdicts] == [True, False]
                    assert "cannot read" in verdicts[1]["reason"]
                reply = ask("enroll-member", {"request_id": "e9", "member_id": "m-x", "images": [garbage]})
                assert not reply["ok"] and "consent" in reply["error"]

                reply = ask("list-members", {"request_id": "l1"})
                assert [(m["member_id"], m["templates"]) for m in reply["result"]["members"]] == [(MEMBER, 4)]

                for member in (MEMBER, MEMBER, "m-other"):
                    daemon.agent.emit(
                        ShopperIdentified(
                            captured_at=time.time(),
                            member_id=member,
                            confidence=0.6,
                            margin=0.2,
                            liveness=0.9,
                            camera="door",
                            track_id="f-1",
                            frames=3,
                        )
                    )
                assert daemon.outbox.flush(timeout=10)
                depth = daemon.outbox.rows
                reply = ask("erase-member", {"request_id": "x1", "member_id": MEMBER})
                assert reply["ok"], reply
                assert reply["result"] == {
                    "member_id": MEMBER,
                    "member_ref": member_ref("s1", MEMBER),
                    "was_enrolled": True,
                    "queued_events_removed": 2,
                }
                assert daemon.outbox.rows == depth - 2, "the other member's event stays queued"
                reply = ask("list-members", {"request_id": "l2"})
                assert reply["result"]["members"] == []
                reply = ask("erase-member", {"request_id": "x2", "member_id": MEMBER})
                assert reply["ok"] and reply["result"]["was_enrolled"] is False
            finally:
                listener.close()
        gallery = Gallery(gallery_path(tmp_path / "state"), parse_key(gallery_key, "test"), "x")
        try:
            actions = [e.action for e in gallery.audit_entries()]
            assert gallery.verify_audit() == len(actions) and actions[-1] == "erase"
        finally:
            gallery.close()
    finally:
        broker.stop()


def test_identify_cli_prints_one_line_per_face(
    tmp_path: Path, models_dir: Path, gallery_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = store_yaml(tmp_path, models_dir, [])
    enroll_by_cli(config, capsys)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    probe, group = require_data("media/faces/probe"), require_data("media/faces/group")
    images = [str(probe / "obama_b.jpg"), str(probe / "biden_a.jpg"), str(group / "two_people.jpg"), str(blank)]
    code = cli_main(["identify", "--config", str(config), *images, str(tmp_path / "missing.jpg")])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    print(
        "\n"
        + "\n".join(f"{d['image'][-20:]}: {d.get('member_id')} {d.get('score')} {d.get('liveness')}" for d in lines)
    )
    assert code == 65, "an unreadable image makes the exit status 65 (EX_DATAERR)"
    by_image: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_image.setdefault(line["image"], []).append(line)
    (obama,) = by_image[images[0]]
    assert obama["member_id"] == MEMBER and obama["score"] >= 0.4 and obama["live"] is True
    assert len(obama["landmarks"]) == 5 and len(obama["box"]) == 4
    (biden,) = by_image[images[1]]
    assert biden["member_id"] is None and biden["best_member"] == MEMBER and biden["score"] < 0.4
    # two_people.jpg: Obama and a man who is not enrolled
    assert sorted(str(d["member_id"]) for d in by_image[images[2]]) == ["None", MEMBER]
    assert by_image[images[3]] == [{"image": images[3], "faces": 0}]
    assert "error" in by_image[str(tmp_path / "missing.jpg")][0]

    # members list / show: consent records without templates; show is an audited export.
    capsys.readouterr()
    assert cli_main(["members", "list", "--config", str(config)]) == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed == {"member_id": MEMBER, "templates": 4, "consent_ref": "F-1", "expires_at": None, "guardian": False}
    assert cli_main(["members", "show", "--config", str(config), MEMBER]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["member_id"] == MEMBER and shown["consent"]["reference"] == "F-1" and shown["templates"] == 4
    assert "embedding" not in json.dumps(shown) and "template_data" not in json.dumps(shown)
    assert cli_main(["members", "show", "--config", str(config), "m-nobody"]) == 1
    assert "m-nobody" in capsys.readouterr().err
    gallery = Gallery(gallery_path(tmp_path / "state"), parse_key(gallery_key, "test"), "x")
    try:
        assert [e.action for e in gallery.audit_entries()][-1] == "export"
    finally:
        gallery.close()


def _longer_than(n: int, messages: list[tuple[str, dict[str, Any]]]) -> bool:
    return len(messages) > n


def test_mqtt_enroll_from_the_kiosk_camera(tmp_path: Path, models_dir: Path, gallery_key: str) -> None:
    """A member opting in at a kiosk: enroll-member with ``camera`` takes that camera's next frames (here with the
    passive check only, ``kiosk_head_turn: false``; the head-turn check: the next test)."""
    from agent.delivery.broker import Mosquitto
    from agent.runtime.daemon import Daemon
    from tests.delivery.conftest import Listener, need_mosquitto, validator

    need_mosquitto()
    kiosk = tmp_path / "kiosk"
    kiosk.mkdir()
    cv2.imwrite(str(kiosk / "0.jpg"), as_camera_frame(imread(require_data("media/faces/probe") / "obama_b.jpg")))
    camera = {"name": "kiosk", "type": "image-folder", "path": str(kiosk), "fps": 5, "loop": True}
    door = {**camera, "name": "door"}  # a face camera that is not a kiosk: nobody is enrolled from it
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        config = store_yaml(
            tmp_path,
            models_dir,
            [camera, door],
            mqtt={"host": "127.0.0.1", "port": broker.port, "health_interval_s": 5},
            pipelines={"face": {"enabled": True, "kiosk_cameras": ["kiosk"], "kiosk_head_turn": False}},
        )
        base = "store/s1/t1"
        with Daemon(load_config(config)) as daemon:
            threading.Thread(target=daemon.serve, daemon=True).start()
            listener = Listener(broker.port, [f"{base}/cmd/+/reply"], "face-kiosk")
            assert daemon.publisher.conn.wait_connected(10)
            try:
                for request_id, extra in (("k1", {"camera": "door"}), ("k2", {"camera": "kiosk", "frames": 2})):
                    before = len(listener.messages)
                    request = {"request_id": request_id, "member_id": "m-kiosk", "consent": {"reference": "K-1"}}
                    listener.command(f"{base}/cmd/enroll-member", {**request, **extra})
                    assert listener.wait(partial(_longer_than, before), timeout=60)
                    reply = listener.messages[before][1]
                    validator("command-reply").validate(reply)
                    print(f"\n{request_id}: {reply.get('result') or reply.get('error')}")
                    if request_id == "k1":
                        assert not reply["ok"] and "not an enrolment kiosk" in reply["error"], reply
                    else:
                        assert reply["ok"], reply
                        assert reply["result"]["enrolled"] == 4 and reply["result"]["photos"] == 2
                assert daemon.agent.shared is not None and daemon.agent.shared.gallery is not None
                gallery = daemon.agent.shared.gallery
                assert [(m.member_id, m.templates) for m in gallery.members()] == [("m-kiosk", 4)]
            finally:
                listener.close()
    finally:
        broker.stop()


def _speech_after(tmp_path: Path, silence_s: float) -> Path:
    """goforward.wav ("go forward ten meters") after ``silence_s`` of silence: it is heard once the face is known."""
    import wave

    source = require_data("media/speech/en/goforward.wav")
    with wave.open(str(source), "rb") as wav:
        params, frames = wav.getparams(), wav.readframes(wav.getnframes())
    path = tmp_path / "counter.wav"
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(b"\0" * int(silence_s * params.framerate) * params.sampwidth * params.nchannels + frames)
    return path


def test_face_speech_and_people_together_carry_the_member(
    tmp_path: Path, models_dir: Path, gallery_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Face, people and speech on one terminal, through the whole agent: the spoken request carries the member
    the face identified, and the person track under that face carries them into scene events, whatever order
    the pipelines were built and run in (they meet only through the shared services)."""
    pytest.importorskip("pocketsphinx")
    probe = require_data("media/faces/probe")
    folder = tmp_path / "door"
    folder.mkdir()
    for i in range(25):  # 5 s at 5 fps: the member stands at the terminal
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), as_camera_frame(imread(probe / "obama_a.jpg")))
    cameras = [{"name": "door", "type": "image-folder", "path": str(folder), "fps": 5, "realtime": True}]
    microphones = [{"name": "counter", "type": "wav-file", "path": str(_speech_after(tmp_path, 2.0)), "realtime": True}]
    intents = [{"name": "go_forward", "phrases": {"en": ["go forward {n} meters"]}, "slots": {"n": ["ten"]}}]
    zone = {"name": "terminal", "points": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]}
    config = store_yaml(
        tmp_path,
        models_dir,
        cameras,
        microphones=microphones,
        pipelines={
            "face": {"enabled": True},
            "people": {"enabled": True, "scenes": {"door": {"anchor": "centre", "zones": [zone]}}},
            "speech": {
                "enabled": True,
                "recognizers": [{"engine": "pocketsphinx", "mode": "grammar"}],
                "intents": intents,
            },
        },
    )
    enroll_by_cli(config, capsys)
    sink = MemorySink()
    with Agent(load_config(config), sink, replay=True) as agent:
        assert agent.wait_finished(timeout=120), "replay did not finish"
    bodies = [e.body for e in sink.events]
    identified = [b for b in bodies if isinstance(b, ShopperIdentified)]
    intents_heard = [b for b in bodies if type(b).__name__ == "SpeechIntent"]
    scene = [b for b in bodies if type(b).__name__ in ("ZoneEntered", "ZoneLeft")]
    print(
        f"\nidentified {[b.member_id for b in identified]}, intents "
        f"{[(b.intent, b.member_id) for b in intents_heard]}, scene "  # type: ignore[attr-defined]
        f"{[(type(b).__name__, b.identity and b.identity.member_id) for b in scene]}"  # type: ignore[attr-defined]
    )
    assert [b.member_id for b in identified] == [MEMBER]
    assert [(b.intent, b.member_id) for b in intents_heard] == [("go_forward", MEMBER)]  # type: ignore[attr-defined]
    left = [b for b in scene if type(b).__name__ == "ZoneLeft"]
    assert left and left[-1].identity is not None and left[-1].identity.member_id == MEMBER  # type: ignore[attr-defined]


def test_privacy_settings_reach_the_face_pipeline(
    tmp_path: Path, models_dir: Path, gallery_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``privacy.egress.face_snapshots`` attaches a small JPEG of the member's face to shopper.identified (and
    nothing to anyone else's events); ``privacy.retention.anonymous_track_s`` ends a stranger's face track so its
    id does not outlive the limit, while the member's track is kept (one identification, not one per second)."""
    probe = require_data("media/faces/probe")
    folder = tmp_path / "door"
    folder.mkdir()
    frames = [as_camera_frame(imread(probe / "obama_a.jpg"))] * 20  # 4 s at 5 fps
    frames += [np.full((480, 640, 3), 60, np.uint8)] * 12
    frames += [as_camera_frame(imread(probe / "biden_a.jpg"))] * 20
    for i, image in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), image)
    cameras = [{"name": "door", "type": "image-folder", "path": str(folder), "fps": 5, "realtime": False}]
    privacy = {"egress": {"face_snapshots": True}, "retention": {"anonymous_track_s": 1.0}}
    config = store_yaml(tmp_path, models_dir, cameras, pipelines={"face": {"enabled": True}}, privacy=privacy)
    enroll_by_cli(config, capsys)
    sink = MemorySink()
    with Agent(load_config(config), sink, replay=True) as agent:
        assert agent.wait_finished(timeout=120)
    identified = [e.body for e in sink.events if isinstance(e.body, ShopperIdentified)]
    strangers = [e.body for e in sink.events if isinstance(e.body, VisitorSeen | SpoofSuspected)]
    print(f"\nidentified {len(identified)}, stranger decisions {[type(b).__name__ for b in strangers]}")
    assert [b.member_id for b in identified] == [MEMBER], "the member's track is not anonymous: it is kept"
    assert len(strangers) >= 3, "4 s in view with a 1 s limit: the stranger's track restarts, with new ids"
    ids = [b.visitor_id if isinstance(b, VisitorSeen) else b.track_id for b in strangers]
    assert len(set(ids)) == len(ids)
    snapshot = identified[0].snapshot
    assert snapshot is not None
    jpeg = cv2.imdecode(np.frombuffer(base64.b64decode(snapshot), np.uint8), cv2.IMREAD_COLOR)
    assert jpeg is not None and max(jpeg.shape[:2]) <= 112 and min(jpeg.shape[:2]) >= 48
    for event in sink.events:
        payload = event.to_payload()
        if event.type != "shopper.identified":
            assert "snapshot" not in payload

    plain = store_yaml(tmp_path, models_dir, cameras, pipelines={"face": {"enabled": True}})
    sink = MemorySink()
    with Agent(load_config(plain), sink, replay=True) as agent:
        assert agent.wait_finished(timeout=120)
    identified = [e.body for e in sink.events if isinstance(e.body, ShopperIdentified)]
    strangers = [e.body for e in sink.events if isinstance(e.body, VisitorSeen | SpoofSuspected)]
    assert [b.snapshot for b in identified] == [None], "off by default: no image leaves the device"
    assert len(strangers) == 1, "without the limit the stranger is one track, decided once"


def test_members_enroll_exit_codes(
    tmp_path: Path,
    models_dir: Path,
    gallery_key: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """65 when a photo is not an image (the usable ones are still enrolled) or none is usable; 78 without a key."""
    config = store_yaml(tmp_path, models_dir, [], pipelines={"face": {"enabled": True}})
    photos = sorted(str(p) for p in require_data("media/faces/enroll/obama").glob("*.jpg"))
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    base = ["members", "enroll", "--config", str(config), "--consent-ref", "F-9"]
    assert cli_main([*base, "--member-id", MEMBER, *photos, str(notes)]) == 65
    out = capsys.readouterr().out
    assert f"enrolled {MEMBER} with 4 template(s) from 2 photo(s)" in out and "refused" in out and "notes.jpg" in out
    assert cli_main([*base, "--member-id", "m-none", str(notes)]) == 65
    assert "notes.jpg" in capsys.readouterr().err
    monkeypatch.delenv("STORE_AGENT_GALLERY_KEY")
    assert cli_main([*base, "--member-id", "m-later", *photos]) == 78
    assert "gallery" in capsys.readouterr().err.lower()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("clip", "turns", "enrolled"),
    [
        ("real.mp4", ["left", "right"], True),  # the person turns left, then right: as prompted
        ("real.mp4", ["right", "left"], False),  # the same person, another prompt: the first turn is the wrong way
        ("fake_replay.mp4", ["left", "right"], False),  # that video on a laptop screen: the turns, but not live
    ],
)
def test_kiosk_enrolment_needs_the_prompted_head_turn(
    tmp_path: Path, models_dir: Path, gallery_key: str, clip: str, turns: list[str], enrolled: bool
) -> None:
    """``kiosk_head_turn``: a kiosk enrolment passes only when the member on the camera turns as the kiosk prompted
    (``head_turn`` in the signed request), live; the frontal frames of that check become the templates."""
    from agent.delivery.broker import Mosquitto
    from agent.runtime.daemon import Daemon
    from tests.delivery.conftest import Listener, need_mosquitto

    need_mosquitto()
    video = require_data(f"media/spoof/replay_video/{clip}")
    camera = {"name": "kiosk", "type": "video-file", "path": str(video), "realtime": True}  # its own 30 fps
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        config = store_yaml(
            tmp_path,
            models_dir,
            [camera],
            mqtt={"host": "127.0.0.1", "port": broker.port, "health_interval_s": 5},
            pipelines={"face": {"enabled": True, "kiosk_cameras": ["kiosk"], "head_turn_time_limit_s": 15}},
        )
        base = "store/s1/t1"
        listener = Listener(broker.port, [f"{base}/cmd/+/reply"], "head-turn")
        with Daemon(load_config(config)) as daemon:  # the clip starts as the daemon is ready: facing the camera
            threading.Thread(target=daemon.serve, daemon=True).start()
            assert daemon.publisher.conn.wait_connected(10)
            request = {"request_id": "h1", "member_id": "m-turn", "consent": {"reference": "K-2"}, "camera": "kiosk"}
            listener.command(f"{base}/cmd/enroll-member", {**request, "head_turn": turns, "frames": 3})
            assert listener.wait(lambda m: bool(m), timeout=60), "no reply"
            reply = listener.messages[0][1]
            print(f"\n{clip} {turns}: {reply.get('result') or reply.get('error')}")
            assert reply["ok"] is enrolled, reply
            if enrolled:
                assert reply["result"]["photos"] >= 1
            else:
                assert "head-turn check failed" in reply["error"] or "spoof" in reply["error"], reply
        listener.close()
    finally:
        broker.stop()
