"""Every exit code the README documents for a command, produced by a real invocation of that command.

The README's command table has an "exit codes" column; ``CASES`` has one real invocation per (command, code)
that produces it, and ``test_the_readme_documents_exactly_the_codes_tested`` keeps the two the same: a code
documented but never produced fails, and so does a code produced but not documented. The invocations are
real processes on real files, models, a real mosquitto and a real daemon; the one exception is the missing
``mosquitto_passwd`` (69 of ``broker config``), which this machine has: that case hides it from the command.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.delivery.broker import Mosquitto, free_port, mosquitto_binary
from tests.conftest import REPO, data_dir
from tests.prereq import require

GALLERY_KEY = secrets.token_hex(32)


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 180, python: list[str] | None = None
) -> Result:
    proc = subprocess.run(
        [*(python or [sys.executable, "-m", "agent"]), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "STORE_AGENT_GALLERY_KEY": GALLERY_KEY, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_until(args: list[str], ready: str, then: Callable[[], None] | None = None, timeout: float = 120) -> Result:
    """Start the command, wait for ``ready`` on stderr, run ``then`` (default: nothing), SIGTERM, collect."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STORE_AGENT_GALLERY_KEY": GALLERY_KEY, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        seen.append(line)
        if ready in line or time.monotonic() > deadline:
            break
    try:
        if then is not None:
            then()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    return Result(proc.returncode, out, "".join(seen) + err)


class World:
    """The files, broker and daemon the cases need, each made on first use and shared by the module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = data_dir()
        self._stop: list[Callable[[], None]] = []

    def close(self) -> None:
        for stop in reversed(self._stop):
            stop()

    def need(self, relative: str) -> Path:
        path = self.data / relative
        if not path.exists():
            require("STORE_AGENT_DATA", f"shared test data not found: {path} (set STORE_AGENT_DATA)")
        return path

    def config(self, name: str, **sections: Any) -> Path:
        data: dict[str, Any] = {
            "version": 1,
            "store": {"id": "codes", "name": "Exit codes"},
            "terminal": {"id": name},
            "storage": {"state_dir": str(self.root / name / "state")},
            "models": {"directory": str(self.root / "no-models")},
            "logging": {"level": "WARNING"},
            **sections,
        }
        path = self.root / name / "store.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    def camera(self, frames: int = 5, realtime: bool = False) -> list[dict[str, Any]]:
        return [{"name": "cam", "type": "test-pattern", "frames": frames, "realtime": realtime, "fps": 10}]

    @cached_property
    def invalid(self) -> Path:
        path = self.root / "invalid.yaml"
        path.write_text(
            "version: 1\nstore: {id: s1, name: S}\nterminal: {id: t1}\ncameras: [{name: c, type: webcam}]\n"
        )
        return path

    @cached_property
    def plain(self) -> Path:
        """A test-pattern camera with motion, no broker: replays print their events."""
        return self.config("plain", cameras=self.camera(), pipelines={"motion": {"enabled": True}})

    @cached_property
    def models(self) -> Path:
        return self.need("models")

    @cached_property
    def no_models(self) -> Path:
        """People counting with an empty models folder: the detector is missing."""
        return self.config("no-models", cameras=self.camera(), pipelines={"people": {"enabled": True}})

    @cached_property
    def broker(self) -> Mosquitto:
        if mosquitto_binary() is None:
            require("mosquitto", "not installed (apt install mosquitto)")
        server = Mosquitto(self.root / "mosquitto").start()
        self._stop.append(server.stop)
        return server

    def mqtt(self, port: int | None = None) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": port or self.broker.port, "health_interval_s": 1}

    @cached_property
    def face(self) -> Path:
        return self.config("face", models={"directory": str(self.models)}, pipelines={"face": {"enabled": True}})

    @cached_property
    def enrolled(self) -> Path:
        """The face config with one member enrolled."""
        photos = sorted(str(p) for p in self.need("media/faces/enroll/obama").glob("*.jpg"))
        result = run_cli(
            ["members", "enroll", "-c", str(self.face), "--member-id", "m-1", "--consent-ref", "F-1", *photos]
        )
        assert result.code == 0, result.err
        return self.face

    @cached_property
    def speech(self) -> Path:
        pytest.importorskip("pocketsphinx")
        intents = [{"name": "go_forward", "phrases": {"en": ["go forward {n} meters"]}, "slots": {"n": ["ten"]}}]
        return self.config(
            "speech",
            pipelines={"speech": {"recognizers": [{"engine": "pocketsphinx", "mode": "grammar"}], "intents": intents}},
        )

    @cached_property
    def speech_no_model(self) -> Path:
        return self.config(
            "speech-vosk", pipelines={"speech": {"intents": [{"name": "smell", "phrases": {"zh": ["好香"]}}]}}
        )

    @cached_property
    def catalog(self) -> Path:
        products = self.need("media/products/catalog")
        skus = sorted(p.name for p in products.iterdir() if p.is_dir())[:2]
        root = self.root / "catalog"
        for sku in skus:
            (root / sku).mkdir(parents=True, exist_ok=True)
            (root / sku / "iconic.jpg").write_bytes((products / sku / "iconic.jpg").read_bytes())
        (root / "catalog.yaml").write_text(yaml.safe_dump({"products": [{"sku": s, "name": s} for s in skus]}))
        return self.config(
            "catalog", models={"directory": str(self.models)}, pipelines={"product": {"catalog_dir": str(root)}}
        )

    def catalog_config(self, name: str, catalog_dir: Path, models: Path) -> Path:
        return self.config(
            name, models={"directory": str(models)}, pipelines={"product": {"catalog_dir": str(catalog_dir)}}
        )

    @cached_property
    def broken_catalog(self) -> Path:
        root = self.root / "broken-catalog"
        root.mkdir()
        (root / "catalog.yaml").write_text("products: []\n")
        return self.catalog_config("broken-catalog", root, self.models)

    @cached_property
    def scene(self) -> Path:
        return self.config(
            "scene",
            cameras=self.camera(frames=3),
            pipelines={"people": {"scenes": {"cam": {"zones": [{"name": "a", "points": [[0, 0], [1, 0], [1, 1]]}]}}}},
        )

    @cached_property
    def scene_off_frame(self) -> Path:
        zone = {"name": "a", "points": [[0, 0], [5000, 0], [5000, 5000]]}
        return self.config(
            "scene-off", cameras=self.camera(frames=3), pipelines={"people": {"scenes": {"cam": {"zones": [zone]}}}}
        )

    @cached_property
    def scene_no_camera(self) -> Path:
        camera = [{"name": "cam", "type": "v4l2", "device": "/dev/video-none-here"}]
        zone = {"name": "a", "points": [[0, 0], [1, 0], [1, 1]]}
        return self.config("scene-v4l2", cameras=camera, pipelines={"people": {"scenes": {"cam": {"zones": [zone]}}}})

    @cached_property
    def hub(self) -> Path:
        hub = self.root / "hub"
        assert run_cli(["hub", "keygen", "--out", str(hub)]).code == 0
        return hub

    @cached_property
    def terminal(self) -> Path:
        """A running terminal that trusts the hub and that the hub has registered."""
        config = self.config(
            "desk",
            mqtt=self.mqtt(),
            cameras=self.camera(frames=10**6, realtime=True),
            trust={"hub_keys": [str(self.hub / "hub.pub")]},
        )
        store, terminal, line = run_cli(["keys", "-c", str(config)]).out.strip().split(" ", 2)
        assert (
            run_cli(["hub", "register", "--terminals", str(self.hub / "terminals.yaml"), store, terminal, line]).code
            == 0
        )
        with (config.parent / "agent.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "-c", str(config)],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

        def stop() -> None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

        self._stop.append(stop)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.send(config, "ping", "--timeout", "2").code == 0:
                return config
        raise AssertionError("the terminal never answered a ping")

    def send(self, config: Path, *args: str) -> Result:
        return run_cli(["hub", "send", "-c", str(config), "--key", str(self.hub / "hub.key"), *args])

    def demo(self, port: int) -> Path:
        """config/demo.yaml with its byte script, its state here and its broker on ``port``."""
        data = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
        data["storage"]["state_dir"] = str(self.root / f"demo-state-{port}")
        data["mqtt"] = {"host": "127.0.0.1", "port": port}
        data["serial"][0]["script"] = str(REPO / "config" / "demo" / "till-scanner.script")
        path = self.root / f"demo-{port}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def audited(self, tampered: bool) -> Path:
        """A face config whose gallery holds a member and two matches; ``tampered``: entry 2 edited in the file."""
        import sqlite3

        import numpy as np

        from agent.identity.gallery import Consent, Gallery
        from agent.pipelines.face.resources import gallery_path

        name = "audit-tampered" if tampered else "audit-sound"
        config = self.config(name, pipelines={"face": {"enabled": True}})
        path = gallery_path(self.root / name / "state")
        if not path.exists():
            gallery = Gallery(path, bytes.fromhex(GALLERY_KEY), "sface")
            gallery.enroll("m-a", [np.ones(128, np.float32) / np.sqrt(128)], [0.9], Consent("F-a"))
            gallery.record("match", "m-a", {"camera": "door", "score": 0.8})
            gallery.close()
            if tampered:
                with sqlite3.connect(path) as db:
                    db.execute('UPDATE audit_log SET detail = \'{"camera":"elsewhere","score":0.8}\' WHERE seq = 2')
        return config

    @cached_property
    def read_only_broker(self) -> Mosquitto:
        """A broker where anonymous clients may read but not publish: nothing the terminal sends arrives."""
        acl = self.root / "read-only.acl"
        acl.write_text("topic read #\n")
        server = Mosquitto(self.root / "mosquitto-ro", extra_conf=[f"acl_file {acl}"]).start()
        self._stop.append(server.stop)
        return server


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("exit-codes"))
    yield w
    w.close()


def _replay_interrupted(w: World) -> Result:
    config = w.config("replay-long", mqtt=w.mqtt(), cameras=w.camera(frames=600, realtime=True))
    return run_until(["replay", "-c", str(config), "--log-level", "INFO"], "daemon ready", then=lambda: time.sleep(1.0))


def _run_stopped(w: World) -> Result:
    config = w.config("run", mqtt=w.mqtt(), cameras=w.camera(frames=10**6, realtime=True))
    return run_until(["--log-level", "INFO", "run", "-c", str(config)], "daemon ready")


def _broker_without_passwd(w: World) -> Result:
    hide = (
        "import sys, agent.delivery.broker_security as b; b.mosquitto_passwd_binary = lambda: None; "
        "from agent.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    out = w.root / "broker-69"
    return run_cli(
        ["broker", "config", "--store", "s1", "--terminal", "t1", "--out", str(out)],
        python=[sys.executable, "-c", hide],
    )


def _broker_exists(w: World) -> Result:
    out = w.root / "broker-1"
    args = ["broker", "config", "--store", "s1", "--terminal", "t1", "--out", str(out)]
    assert run_cli(args).code == 0
    return run_cli(args)


def _keygen_exists(w: World) -> Result:
    return run_cli(["hub", "keygen", "--out", str(w.hub)])


def _enroll(w: World) -> Result:
    photos = sorted(str(p) for p in w.need("media/faces/enroll/obama").glob("*.jpg"))
    return run_cli(["members", "enroll", "-c", str(w.face), "--member-id", "m-0", "--consent-ref", "F-0", *photos])


def _erase_unknown(w: World) -> Result:
    return run_cli(["members", "erase", "-c", str(w.enrolled), "m-nobody"])


def _w(args: Callable[[World], list[str]]) -> Callable[[World], Result]:
    return lambda w: run_cli(args(w))


def _run_restarts(w: World) -> Result:
    """A pushed config that changes the broker settings, restart allowed: run exits 75 for systemd to start it."""
    config = w.config(
        "restart",
        mqtt=w.mqtt(),
        cameras=w.camera(frames=10**6, realtime=True),
        trust={"hub_keys": [str(w.hub / "hub.pub")]},
    )
    changed = yaml.safe_load(config.read_text())
    changed["mqtt"]["health_interval_s"] = 2
    request = json.dumps({"config": yaml.safe_dump(changed), "restart": True})
    return run_until(
        ["--log-level", "INFO", "run", "-c", str(config)],
        "daemon ready",
        then=lambda: w.send(config, "--timeout", "20", "apply-config", request) and time.sleep(3),
    )


def _push(w: World, name: str, change: Callable[[dict[str, Any]], None], *extra: str) -> Result:
    """`hub push-config` of the running terminal's config with ``change`` made to it."""
    folder = w.root / f"push-{name}"
    folder.mkdir(exist_ok=True)
    data = yaml.safe_load(w.terminal.read_text())
    change(data)
    (folder / f"{data['terminal']['id']}.yaml").write_text(yaml.safe_dump(data))
    key = str(w.hub / "hub.key")
    return run_cli(["hub", "push-config", "-c", str(w.terminal), "--key", key, "--store", "codes", *extra, str(folder)])


def _push_nothing(w: World) -> Result:
    folder = w.root / "push-nothing"
    folder.mkdir(exist_ok=True)
    key = str(w.hub / "hub.key")
    return run_cli(["hub", "push-config", "-c", str(w.terminal), "--key", key, "--store", "codes", str(folder)])


def _push_to_nobody(w: World) -> Result:
    return _push(w, "ghost", _ghost, "--terminal", "ghost", "--timeout", "2")


def _motion_on(data: dict[str, Any]) -> None:
    data["pipelines"] = {"motion": {"enabled": True}}


def _bad_fps(data: dict[str, Any]) -> None:
    data["cameras"][0]["fps"] = -5


def _ghost(data: dict[str, Any]) -> None:
    data["terminal"]["id"] = "ghost"


def _ghost_registry(w: World) -> Path:
    """A registry naming one terminal of store ``codes`` that never answers."""
    path = w.root / "ghost-terminals.yaml"
    if not path.exists():
        line = run_cli(["keys", "-c", str(w.plain)]).out.strip().split(" ", 2)[2]
        assert run_cli(["hub", "register", "--terminals", str(path), "codes", "ghost", line]).code == 0
    return path


def _fleet(w: World, *args: str) -> Result:
    return run_cli(["hub", "fleet", *args, "--state-dir", str(w.root / "fleet")])


def _fleet_run(w: World) -> Result:
    key, state = str(w.hub / "hub.key"), str(w.root / "fleet-run")
    return run_until(
        ["hub", "fleet", "run", "-c", str(w.terminal), "--key", key, "--state-dir", state], "fleet coordinator on"
    )


def _hub_serve(w: World) -> Result:
    key, state = str(w.hub / "hub.key"), str(w.root / "serve")
    return run_until(
        ["hub", "serve", "-c", str(w.terminal), "--key", key, "--state-dir", state, "--processes", "2"],
        "hub consumer 1 ",
    )


def _chain_without_passwd(w: World) -> Result:
    hide = (
        "import sys, agent.delivery.broker_security as b; b.mosquitto_passwd_binary = lambda: None; "
        "from agent.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return run_cli(
        ["broker", "chain", "--store", "s1", "--out", str(w.root / "chain-69")], python=[sys.executable, "-c", hide]
    )


def _chain_exists(w: World) -> Result:
    args = ["broker", "chain", "--store", "s1", "--out", str(w.root / "chain-1")]
    assert run_cli(args).code == 0
    return run_cli(args)


def _fleet_erase_confirmed(w: World) -> Result:
    """The coordinator running, the store's one terminal confirms the erasure (no gallery there: nothing to
    erase but queued events, and it says so with its MAC)."""
    config = w.terminal
    log = w.root / "fleet-run.log"
    with log.open("w") as err:
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "agent", "hub", "fleet", "run", "-c", str(config), "--key", str(w.hub / "hub.key"),
             "--state-dir", str(w.root / "fleet"), "--retry", "2"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "fleet coordinator on" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        return _fleet(w, "erase", "--key", str(w.hub / "hub.key"), "--store", "codes", "--member-id", "m-9")
    finally:
        coordinator.send_signal(signal.SIGTERM)
        coordinator.wait(30)


def _fleet_erase_pending(w: World) -> Result:
    return _fleet(
        w, "erase", "--key", str(w.hub / "hub.key"), "--terminals", str(_ghost_registry(w)), "--store", "codes",
        "--member-id", "m-8", "--wait", "1",
    )  # fmt: skip


def _after_an_erasure(w: World, *args: str) -> Result:
    """A fleet command that lists erasures, run with one recorded (each case stands alone, in any order)."""
    _fleet_erase_pending(w)
    return _fleet(w, *args)


def _fleet_cards_of_erased(w: World) -> Result:
    _fleet_erase_pending(w)
    return _fleet(w, "cards", "--store", "codes", "--member-id", "m-8", "--add", "ab" * 32)


#: (command as the README's table names it, exit code, what produces it, a text the output must contain)
CASES: list[tuple[str, int, Callable[[World], Result], str]] = [
    ("version", 0, _w(lambda w: ["version"]), "store-agent "),
    ("check-config", 0, _w(lambda w: ["check-config", "-c", str(w.plain)]), "valid"),
    ("check-config", 2, _w(lambda w: ["check-config"]), "the config file is required"),
    ("check-config", 69, _w(lambda w: ["check-config", "--strict", "-c", str(w.no_models)]), "yolox-nano"),
    ("check-config", 78, _w(lambda w: ["check-config", str(w.invalid)]), "unknown type 'webcam'"),
    ("run", 0, _run_stopped, "received SIGTERM, stopping"),
    ("run", 2, _w(lambda w: ["run"]), "required: --config"),
    ("run", 69, _w(lambda w: ["run", "-c", str(w.no_models)]), "store-agent models fetch yolox-nano"),
    ("run", 75, _run_restarts, "restarting"),
    ("run", 78, _w(lambda w: ["run", "-c", str(w.invalid)]), "invalid configuration"),
    ("replay", 0, _w(lambda w: ["replay", "-c", str(w.plain)]), "replay finished"),
    (
        "replay",
        1,
        _w(
            lambda w: [
                "replay",
                "-c",
                str(w.config("slow", mqtt=w.mqtt(), cameras=w.camera(600, True))),
                "--timeout",
                "2",
            ]
        ),
        "--timeout 2 s came before every source was exhausted",
    ),
    ("replay", 2, _w(lambda w: ["replay", "-c", str(w.plain), "--timeout", "soon"]), "invalid float value"),
    (
        "replay",
        69,
        _w(
            lambda w: [
                "replay",
                "-c",
                str(w.config("away", mqtt=w.mqtt(free_port()), cameras=w.camera())),
                "--timeout",
                "3",
            ]
        ),
        "not acknowledged by 127.0.0.1",
    ),
    ("replay", 78, _w(lambda w: ["replay", "-c", str(w.invalid)]), "invalid configuration"),
    ("replay", 130, _replay_interrupted, "stopped before every source was exhausted"),
    ("demo", 0, _w(lambda w: ["demo", "-c", str(w.demo(w.broker.port))]), "all delivered"),
    (
        "demo",
        1,
        _w(lambda w: ["demo", "-c", str(w.demo(w.read_only_broker.port)), "--timeout", "3"]),
        "NOT all delivered",
    ),
    ("demo", 2, _w(lambda w: ["demo", "--timeout", "never"]), "invalid float value"),
    ("demo", 78, _w(lambda w: ["demo", "-c", str(w.invalid)]), "invalid configuration"),
    ("monitor", 0, _w(lambda w: ["monitor", "-c", str(w.config("mon", mqtt=w.mqtt())), "--timeout", "1"]), "0 events"),
    (
        "monitor",
        1,
        _w(lambda w: ["monitor", "-c", str(w.config("mon", mqtt=w.mqtt())), "--count", "1", "--timeout", "1"]),
        "--count 1 not reached",
    ),
    ("monitor", 2, _w(lambda w: ["monitor", "--count", "1"]), "required: --config"),
    ("monitor", 78, _w(lambda w: ["monitor", "-c", str(w.invalid)]), "invalid configuration"),
    ("hub keygen", 0, _w(lambda w: ["hub", "keygen", "--out", str(w.root / "hub-0")]), "wrote "),
    ("hub keygen", 1, _keygen_exists, "exists"),
    ("hub keygen", 2, _w(lambda w: ["hub", "keygen"]), "required: --out"),
    (
        "hub register",
        0,
        _w(
            lambda w: [
                "hub",
                "register",
                "--terminals",
                str(w.root / "t.yaml"),
                "s1",
                "t1",
                run_cli(["keys", "-c", str(w.plain)]).out.split(" ", 2)[2].strip(),
            ]
        ),
        "registered",
    ),
    ("hub register", 2, _w(lambda w: ["hub", "register", "s1", "t1", "key"]), "required: --terminals"),
    (
        "hub register",
        78,
        _w(lambda w: ["hub", "register", "--terminals", str(w.root / "t.yaml"), "s1", "t1", "garbage"]),
        "expected 'store-agent-terminal-v1",
    ),
    ("hub send", 0, lambda w: w.send(w.terminal, "ping"), '"ok": true'),
    ("hub send", 1, lambda w: w.send(w.terminal, "no-such-command"), '"ok": false'),
    ("hub send", 2, lambda w: w.send(w.plain, "erase-member", "{not json"), "not JSON"),
    (
        "hub send",
        69,
        lambda w: w.send(w.config("mon", mqtt=w.mqtt()), "--terminal", "absent", "--timeout", "2", "ping"),
        "no reply",
    ),
    ("hub send", 78, lambda w: w.send(w.invalid, "ping"), "invalid configuration"),
    ("hub push-config", 0, lambda w: _push(w, "on", _motion_on), "desk: applied, config "),
    ("hub push-config", 1, lambda w: _push(w, "bad", _bad_fps), "cameras[0].fps: must be greater than 0"),
    ("hub push-config", 2, _push_nothing, "no <terminal>.yaml in"),
    ("hub push-config", 69, _push_to_nobody, "ghost: no reply within 2 s"),
    ("hub fleet run", 0, _fleet_run, "fleet coordinator stopped"),
    ("hub serve", 0, _hub_serve, "hub serve: stopped"),
    (
        "hub serve",
        2,
        _w(lambda w: ["hub", "serve", "-c", str(w.terminal), "--key", "k", "--state-dir", "s", "--processes", "0"]),
        "--processes must be 1 to 64",
    ),
    (
        "hub serve",
        78,
        _w(lambda w: ["hub", "serve", "-c", str(w.invalid), "--key", "k", "--state-dir", str(w.root / "s78")]),
        "invalid configuration",
    ),
    ("hub fleet erase", 0, _fleet_erase_confirmed, "erased on 1 of 1 terminals"),
    (
        "hub fleet erase",
        1,
        lambda w: _fleet(w, "erase", "--key", str(w.hub / "hub.key"), "--store", "nowhere", "--member-id", "m-1"),
        "no terminal of store 'nowhere' is registered",
    ),
    ("hub fleet erase", 75, _fleet_erase_pending, "erased on 0 of 1 terminals; waiting for ghost"),
    ("hub fleet erasures", 0, lambda w: _after_an_erasure(w, "erasures"), "codes "),
    ("hub fleet members", 0, lambda w: _after_an_erasure(w, "members", "--store", "codes"), '"erased": true'),
    (
        "hub fleet cards",
        0,
        lambda w: _fleet(w, "cards", "--store", "codes", "--member-id", "m-card", "--add", "cd" * 32),
        "cards of m-card updated",
    ),
    ("hub fleet cards", 1, _fleet_cards_of_erased, "was erased"),
    ("keys", 0, _w(lambda w: ["keys", "-c", str(w.plain)]), "store-agent-terminal-v1 "),
    ("keys", 2, _w(lambda w: ["keys"]), "required: --config"),
    ("keys", 78, _w(lambda w: ["keys", "-c", str(w.invalid)]), "invalid configuration"),
    (
        "broker config",
        0,
        _w(lambda w: ["broker", "config", "--store", "s1", "--terminal", "t1", "--out", str(w.root / "broker-0")]),
        "wrote acl",
    ),
    ("broker config", 1, _broker_exists, "exists (use --force"),
    (
        "broker config",
        2,
        _w(
            lambda w: [
                "broker",
                "config",
                "--store",
                "s1",
                "--terminal",
                "t1",
                "--out",
                str(w.root / "b2"),
                "--tls-ca",
                "ca.pem",
            ]
        ),
        "go together",
    ),
    ("broker config", 69, _broker_without_passwd, "mosquitto_passwd"),
    (
        "broker chain",
        0,
        _w(lambda w: ["broker", "chain", "--store", "s1", "--out", str(w.root / "chain-0")]),
        "wrote acl",
    ),
    ("broker chain", 1, _chain_exists, "exists (use --force"),
    (
        "broker chain",
        2,
        _w(lambda w: ["broker", "chain", "--store", "s1", "--store", "s1", "--out", str(w.root / "chain-2")]),
        "a store is listed twice",
    ),
    ("broker chain", 69, _chain_without_passwd, "mosquitto_passwd"),
    ("models list", 0, _w(lambda w: ["models", "list", "--dir", str(w.root / "no-models")]), "missing"),
    ("models list", 2, _w(lambda w: ["models", "list", "no-such-model"]), "unknown model(s): no-such-model"),
    (
        "models fetch",
        0,
        _w(lambda w: ["models", "fetch", "antispoof_minifasnet_v2", "--dir", str(w.root / "fetched")]),
        "ok",
    ),
    (
        "models fetch",
        1,
        lambda w: run_cli(
            ["models", "fetch", "antispoof_minifasnet_v2", "--dir", str(w.root / "f1")],
            env={"STORE_AGENT_DATA": str(w.root / "nothing")},
        ),
        "could not be provisioned",
    ),
    ("models fetch", 2, _w(lambda w: ["models", "fetch", "no-such-model"]), "unknown model(s)"),
    ("models verify", 0, _w(lambda w: ["models", "verify", "antispoof_minifasnet_v2", "--dir", str(w.models)]), "ok"),
    (
        "models verify",
        1,
        _w(lambda w: ["models", "verify", "antispoof_minifasnet_v2", "--dir", str(w.root / "no-models")]),
        "is missing",
    ),
    ("models verify", 2, _w(lambda w: ["models", "verify", "no-such-model"]), "unknown model(s)"),
    ("members enroll", 0, _enroll, "enrolled m-0 with 4 template(s)"),
    (
        "members enroll",
        2,
        _w(
            lambda w: [
                "members",
                "enroll",
                "-c",
                str(w.face),
                "--member-id",
                "m",
                "--consent-ref",
                "F",
                "--expires",
                "31/01/2027",
                "a.jpg",
            ]
        ),
        "YYYY-MM-DD",
    ),
    (
        "members enroll",
        65,
        _w(
            lambda w: [
                "members",
                "enroll",
                "-c",
                str(w.face),
                "--member-id",
                "m-2",
                "--consent-ref",
                "F",
                str(w.root / "missing.jpg"),
            ]
        ),
        "missing.jpg",
    ),
    (
        "members enroll",
        69,
        _w(
            lambda w: [
                "members",
                "enroll",
                "-c",
                str(w.config("face-none", pipelines={"face": {"enabled": True}})),
                "--member-id",
                "m",
                "--consent-ref",
                "F",
                str(w.invalid),
            ]
        ),
        "store-agent models fetch",
    ),
    (
        "members enroll",
        78,
        lambda w: run_cli(
            ["members", "enroll", "-c", str(w.face), "--member-id", "m", "--consent-ref", "F", "x.jpg"],
            env={"STORE_AGENT_GALLERY_KEY": ""},
        ),
        "gallery",
    ),
    ("members list", 0, _w(lambda w: ["members", "list", "-c", str(w.enrolled)]), '"member_id": "m-1"'),
    ("members list", 2, _w(lambda w: ["members", "list"]), "required: --config"),
    ("members list", 78, _w(lambda w: ["members", "list", "-c", str(w.invalid)]), "invalid configuration"),
    ("members show", 0, _w(lambda w: ["members", "show", "-c", str(w.enrolled), "m-1"]), '"consent"'),
    ("members show", 1, _w(lambda w: ["members", "show", "-c", str(w.enrolled), "m-nobody"]), "m-nobody"),
    ("members show", 2, _w(lambda w: ["members", "show", "-c", str(w.face)]), "required: member_id"),
    ("members erase", 0, _w(lambda w: ["members", "erase", "-c", str(w.enrolled), "m-1"]), "erased m-1"),
    ("members erase", 1, _erase_unknown, "is not enrolled"),
    ("members erase", 2, _w(lambda w: ["members", "erase", "m-1"]), "required"),
    ("members audit", 0, _w(lambda w: ["members", "audit", "-c", str(w.audited(False))]), "verifies: 2 entries"),
    ("members audit", 1, _w(lambda w: ["members", "audit", "-c", str(w.audited(True))]), "broken at entry 2"),
    ("members audit", 2, _w(lambda w: ["members", "audit", "--head"]), "required: --config"),
    ("members audit", 78, _w(lambda w: ["members", "audit", "-c", str(w.invalid)]), "invalid configuration"),
    (
        "identify",
        0,
        _w(lambda w: ["identify", "-c", str(w.face), str(w.need("media/faces/probe/obama_a.jpg"))]),
        '"faces": 1',
    ),
    ("identify", 2, _w(lambda w: ["identify", "-c", str(w.face)]), "required: images"),
    (
        "identify",
        65,
        _w(lambda w: ["identify", "-c", str(w.face), str(w.root / "missing.jpg")]),
        "cannot read the image",
    ),
    (
        "identify",
        69,
        _w(lambda w: ["identify", "-c", str(w.config("face-none", pipelines={"face": {"enabled": True}})), "x.jpg"]),
        "store-agent models fetch",
    ),
    (
        "identify",
        78,
        lambda w: run_cli(["identify", "-c", str(w.face), "x.jpg"], env={"STORE_AGENT_GALLERY_KEY": "short"}),
        "gallery",
    ),
    (
        "zones",
        0,
        _w(lambda w: ["zones", "-c", str(w.scene), "--camera", "cam", "--snapshot", str(w.root / "z.png")]),
        "1 zone(s)",
    ),
    (
        "zones",
        1,
        _w(lambda w: ["zones", "-c", str(w.scene), "--camera", "cam", "--snapshot", str(w.root / "no-dir" / "z.png")]),
        "cannot write",
    ),
    (
        "zones",
        2,
        _w(
            lambda w: [
                "zones",
                "-c",
                str(w.scene),
                "--camera",
                "cam",
                "--snapshot",
                str(w.root / "z.png"),
                "--frame",
                "9",
            ]
        ),
        "ends after 3 frame(s)",
    ),
    (
        "zones",
        69,
        _w(lambda w: ["zones", "-c", str(w.scene_no_camera), "--camera", "cam", "--snapshot", str(w.root / "z.png")]),
        "cam",
    ),
    (
        "zones",
        78,
        _w(lambda w: ["zones", "-c", str(w.scene_off_frame), "--camera", "cam", "--snapshot", str(w.root / "z.png")]),
        "scene-off",
    ),
    (
        "listen",
        0,
        _w(lambda w: ["listen", "-c", str(w.speech), str(w.need("media/speech/en/goforward.wav"))]),
        '"intent": "go_forward"',
    ),
    ("listen", 2, _w(lambda w: ["listen", "-c", str(w.plain)]), "required: WAV"),
    ("listen", 65, _w(lambda w: ["listen", "-c", str(w.speech), str(w.invalid)]), "not a PCM WAV"),
    (
        "listen",
        69,
        _w(lambda w: ["listen", "-c", str(w.speech_no_model), str(w.invalid)]),
        "store-agent models fetch vosk-model-small-cn",
    ),
    ("listen", 78, _w(lambda w: ["listen", "-c", str(w.invalid), "a.wav"]), "invalid configuration"),
    ("catalog build", 0, _w(lambda w: ["catalog", "build", "-c", str(w.catalog)]), "2 SKUs"),
    ("catalog build", 2, _w(lambda w: ["catalog", "build"]), "required: --config"),
    ("catalog build", 65, _w(lambda w: ["catalog", "build", "-c", str(w.broken_catalog)]), "lists no products"),
    (
        "catalog build",
        69,
        _w(lambda w: ["catalog", "build", "-c", str(w.catalog_config("catalog-none", w.root, w.root / "no-models"))]),
        "store-agent models fetch",
    ),
    ("catalog build", 78, _w(lambda w: ["catalog", "build", "-c", str(w.invalid)]), "invalid configuration"),
    (
        "catalog search",
        0,
        _w(
            lambda w: [
                "catalog",
                "search",
                "-c",
                str(w.catalog),
                str(w.need("media/products/catalog/Alpro-Blueberry-Soyghurt/iconic.jpg")),
            ]
        ),
        '"top"',
    ),
    (
        "catalog search",
        2,
        _w(lambda w: ["catalog", "search", "-c", str(w.catalog), "--top", "0", "x.jpg"]),
        "--top must be at least 1",
    ),
    (
        "catalog search",
        65,
        _w(lambda w: ["catalog", "search", "-c", str(w.catalog), str(w.invalid)]),
        "not a readable image",
    ),
]


@pytest.mark.parametrize(("command", "code", "invoke", "text"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_documented_exit_code(
    world: World, command: str, code: int, invoke: Callable[[World], Result], text: str
) -> None:
    result = invoke(world)
    output = result.out + result.err
    assert result.code == code, f"{command}: exit {result.code}, expected {code}\n{output}"
    assert text in output, output
    assert "Traceback" not in output


def readme_codes() -> dict[str, set[int]]:
    """The README's command table: command (the words before the first option or placeholder) -> exit codes."""
    table: dict[str, set[int]] = {}
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `store-agent ([^`]*)` \|.*\| ([0-9, ]+) \|$", line)
        if not match:
            continue
        words = []
        for word in match[1].split():
            if word.startswith(("-", "[", "'")) or word.isupper():
                break
            words.append(word)
        table[" ".join(words)] = {int(code) for code in match[2].split(",")}
    return table


def test_the_readme_documents_exactly_the_codes_tested() -> None:
    documented = readme_codes()
    tested: dict[str, set[int]] = {}
    for command, code, _, _ in CASES:
        tested.setdefault(command, set()).add(code)
    assert documented == tested
