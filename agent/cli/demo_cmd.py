"""``store-agent demo``: the product end to end, through the outbox and MQTT to a monitor.

With the models (``var/models`` or ``STORE_AGENT_DATA/models``) and the shared media (``STORE_AGENT_DATA``),
the demo is the mission (config/demo-mission.yaml, agent/cli/demo_mission.py): a member enrolled from photos
and identified at the kiosk, a stranger seen as an anonymous visitor, people crossing a line and queueing, a
spoken request answered with the member attached, a product recognised, a card tapped. It ends with a checklist
of what was shown and exits 1 when any item is missing. Without them it says which command provisions what is
missing and runs the basic demo (config/demo.yaml: a synthetic camera, a replayed barcode scanner).
``--config`` runs that config instead. It uses the broker in the config when one answers there; otherwise it
starts a local one (mosquitto on a free port, or amqtt) for the run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent.cli import add_config_option, log_level
from agent.cli import demo_mission as mission
from agent.cli.monitor_cmd import run_monitor
from agent.config.examples import example, installed, user_state_dir, writable
from agent.config.loader import LoadedConfig, load_config
from agent.delivery.broker import reachable, start_local_broker
from agent.logsetup import configure_logging
from agent.runtime.daemon import Daemon
from agent.runtime.sink import MemorySink

DEMO_CONFIG = example("demo.yaml")  # shipped in the package: the demo works after a plain `pip install` too


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="the product on real media (or the basic demo), through MQTT to a monitor")
    add_config_option(parser, required=False, help="run this config instead of the mission (e.g. config/demo.yaml)")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")
    parser.add_argument("--basic", action="store_true", help="the basic demo (config/demo.yaml) even with models")
    parser.add_argument(
        "--models",
        type=Path,
        help=f"where the models are (default: {mission.DEFAULT_MODELS}, then STORE_AGENT_DATA/models)",
    )
    parser.add_argument("--broker", metavar="HOST:PORT", type=_host_port, help="use this broker, not the config's")
    parser.add_argument(
        "--mission-dir",
        type=Path,
        default=mission.WORK,
        help="where the mission's config and media are made (default: %(default)s)",
    )
    parser.set_defaults(func=demo)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def with_broker(loaded: LoadedConfig, host: str, port: int) -> LoadedConfig:
    c = loaded.config
    mqtt = c.mqtt.model_copy(update={"host": host, "port": port, "tls": None, "protocol": "3.1.1"})
    return LoadedConfig(c.model_copy(update={"mqtt": mqtt}), loaded.path, loaded.sha256, loaded.base)


def with_writable_state(loaded: LoadedConfig) -> LoadedConfig:
    """The config with its state (and a models directory that does not exist) moved to a per-user directory when
    it is the demo config shipped in an installed package, or its state directory is not writable by this user."""
    c = loaded.config
    state_dir = Path(c.storage.state_dir)
    if not installed(loaded.path) and writable(state_dir):
        return loaded
    home = user_state_dir("demo")
    storage = c.storage.model_copy(update={"state_dir": home / "state"})
    update: dict[str, Any] = {"storage": storage}
    if not Path(c.models.directory).is_dir():
        update["models"] = c.models.model_copy(update={"directory": home / "models"})
    print(f"demo: keeping the demo's state in {home}", file=sys.stderr)
    return LoadedConfig(c.model_copy(update=update), loaded.path, loaded.sha256, loaded.base)


def _say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


def _choose(args: argparse.Namespace) -> tuple[Path, mission.Mission | None]:
    """The config to run: --config, else the mission when everything it needs is here, else the basic demo."""
    if args.config is not None:
        return args.config, None
    if args.basic:
        return DEMO_CONFIG, None
    models, lacking = mission.find_models(args.models)
    media = mission.missing_media()
    if models is None or media or not mission.speech_available():
        if models is None:
            _say(
                f"the product demo needs the models {', '.join(lacking)}: provision them with "
                f"`store-agent models fetch {' '.join(lacking)} --dir {args.models or mission.DEFAULT_MODELS}` "
                f"(or set STORE_AGENT_DATA to a folder whose models/ has them)"
            )
        if media:
            _say(f"the product demo needs the shared media (STORE_AGENT_DATA={mission.data_dir()}): missing {media[0]}")
        if not mission.speech_available():
            _say("the product demo needs PocketSphinx: install the speech extra (`pip install -e .[speech]`)")
        _say(f"running the basic demo instead: {DEMO_CONFIG} (a synthetic camera and a replayed barcode scanner)")
        return DEMO_CONFIG, None
    prepared = mission.prepare(models, args.mission_dir)
    _say(f"the product demo: {prepared.config} (media and config made in {prepared.work}); it uses")
    for line in prepared.sources:
        _say(f"  {line}")
    return prepared.config, prepared


def _enrol(loaded: LoadedConfig, prepared: mission.Mission) -> None:
    """The member gives consent and is enrolled from their photos, as `store-agent members enroll` does."""
    from agent.identity.enrollment import enroll_files
    from agent.identity.gallery import Consent
    from agent.pipelines.face.resources import load_analyzer, open_gallery
    from agent.pipelines.face.settings import FaceSettings

    config = loaded.config
    face = config.pipelines.settings(FaceSettings)
    if face.key_env and face.key_env not in os.environ:
        os.environ[face.key_env] = secrets.token_hex(32)
        _say(f"a gallery key for this run only (${face.key_env}): the gallery is encrypted at rest")
    gallery = open_gallery(face, Path(config.storage.state_dir))
    try:
        analyzer = load_analyzer(face, config.models.options())
        consent = Consent("DEMO-CONSENT-1", "identification", 0.0, None, False)
        result = enroll_files(
            gallery, analyzer, mission.MEMBER, consent, [str(p) for p in prepared.enrol_photos], face.liveness_threshold
        )
    finally:
        gallery.close()
    _say(f"enrolled {mission.MEMBER} (consent DEMO-CONSENT-1) from {result.photos} photo(s)")


def demo(args: argparse.Namespace) -> int:
    path, prepared = _choose(args)
    loaded = with_writable_state(load_config(path))
    configure_logging(loaded.config.logging, log_level(args) or "WARNING")
    if prepared is not None:
        _enrol(loaded, prepared)
    if args.broker is not None:
        loaded = with_broker(loaded, *args.broker)
    mqtt = loaded.config.mqtt
    broker: Any = None
    with tempfile.TemporaryDirectory(prefix="store-agent-demo-") as tmp:
        if reachable(mqtt.host, mqtt.port):
            _say(f"using the broker at {mqtt.host}:{mqtt.port}")
        else:
            broker = start_local_broker(Path(tmp))
            started = f"{type(broker).__name__.lower()} on 127.0.0.1:{broker.port}"
            _say(f"no broker at {mqtt.host}:{mqtt.port}; started {started}")
            loaded = with_broker(loaded, "127.0.0.1", broker.port)
        try:
            return _run(loaded, args.timeout, prepared is not None)
        finally:
            if broker is not None:
                broker.stop()


def _run(loaded: LoadedConfig, timeout: float, checklist: bool) -> int:
    config = loaded.config
    stop = threading.Event()
    result: dict[str, Any] = {}
    watcher = threading.Thread(
        target=lambda: result.update(
            monitor=run_monitor(config.mqtt, config.store.id, config.terminal.id, ack=True, stop=stop)
        ),
        daemon=True,
    )
    watcher.start()
    events = MemorySink()
    with Daemon(loaded, replay=True, extra_sink=events) as daemon:
        _, delivered = daemon.replay_to_end(timeout)
        accepted = daemon.outbox.accepted
    time.sleep(1.0)
    stop.set()
    watcher.join(10)
    seen = result["monitor"].unique if "monitor" in result else 0
    _say(f"{accepted} events accepted, {'all' if delivered else 'NOT all'} delivered; the monitor saw {seen}")
    ok = delivered and seen >= accepted
    if checklist:
        ok = _checklist([e.to_payload() for e in events.events]) and ok
    return 0 if ok else 1


def _checklist(payloads: list[dict[str, Any]]) -> bool:
    """What the mission set out to show, each with the events that show it."""

    def of(kind: str, **match: Any) -> list[dict[str, Any]]:
        return [p for p in payloads if p["type"] == kind and all(p.get(k) == v for k, v in match.items())]

    member = mission.MEMBER
    queues = of("queue.length")
    checks = [
        ("member identified at the kiosk (shopper.identified)", of("shopper.identified", member_id=member)),
        ("stranger in the lobby as an anonymous visitor (visitor.seen)", of("visitor.seen", camera="lobby")),
        (
            "people crossing the door line (person.entered / person.exited)",
            of("person.entered", line="door") + of("person.exited", line="door"),
        ),
        ("people queueing at the kerb (queue.length > 0)", [q for q in queues if q["length"] > 0]),
        ("spoken request with the member attached (speech.intent)", of("speech.intent", member_id=member)),
        ("product recognised at the till (product.recognized)", of("product.recognized", sku=mission.PRODUCT)),
        ("member card tapped (card.tapped)", of("card.tapped", member_id=member)),
    ]
    _say("what the demo showed:")
    for text, found in checks:
        _say(f"  [{'x' if found else ' '}] {text}: {len(found)} event(s)")
    missing = [text for text, found in checks if not found]
    if missing:
        _say(f"NOT shown: {'; '.join(missing)}")
    return not missing
