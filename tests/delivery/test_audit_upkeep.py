"""Upkeep on a timer in the running daemon: consent expiry erases the member, and the audit chain's head in health
lets the hub catch a chain that was cut short (the shortened chain still verifies on the terminal) or edited."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.config.loader import load_config
from agent.delivery.broker import Mosquitto
from agent.delivery.monitor import Monitor
from agent.identity.gallery import Consent, Gallery
from agent.pipelines.face.resources import gallery_path
from tests.delivery.conftest import PATTERN_CAMERA, REPO, start_agent, validator, write_config

KEY = secrets.token_bytes(32)


def _members(path: Path) -> list[str]:
    gallery = Gallery(path, KEY, "sface")
    try:
        return [m.member_id for m in gallery.members()]
    finally:
        gallery.close()


def _audit_cli(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "members", "audit", "-c", str(config), *extra],
        cwd=REPO, env={**os.environ, "STORE_AGENT_GALLERY_KEY": KEY.hex()}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_consent_expires_on_the_timer_and_the_hub_catches_a_shortened_chain(
    own_broker: Mosquitto, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        own_broker.port,
        identity={"upkeep_interval_s": 0.5},
        cameras=[{**PATTERN_CAMERA, "realtime": True}],
        pipelines={"motion": {"enabled": True}},
    )
    loaded = load_config(config).config
    path = gallery_path(Path(loaded.storage.state_dir))
    gallery = Gallery(path, KEY, "sface")
    vector = [np.ones(128, np.float32) / np.sqrt(128)]
    gallery.enroll("m-expiring", vector, [0.9], Consent("F-1", expires_at=time.time() + 3.0))
    gallery.enroll("m-staying", vector, [0.9], Consent("F-2"))
    for member in ("m-expiring", "m-staying", "m-staying"):
        gallery.record("match", member, {"camera": "door", "score": 0.8})
    gallery.close()

    audits: list[dict[str, Any]] = []

    def on_status(terminal: str, kind: str, payload: dict[str, Any]) -> None:
        if kind == "health" and "audit" in payload:
            validator("health").validate(payload)
            audits.append(payload["audit"])

    hub = Monitor(
        loaded.mqtt, loaded.store.id, client_id="hub-audit", ack=False, on_event=lambda *a: None,
        on_status=on_status, health=True,
    ).start()  # fmt: skip
    agent = start_agent(config, {"STORE_AGENT_GALLERY_KEY": KEY.hex()})
    try:
        assert hub.subscribed.wait(10)
        # consent expiry on the timer, through the erasure path: the member is gone, their entries redacted
        assert hub.wait_for(lambda: any(a["consent_expired"] == 1 for a in audits), 30), audits
        assert _members(path) == ["m-staying"]
        expired = [a for a in audits if a["consent_expired"] == 1][-1]
        assert expired["ok"] and expired["head_seq"] == 6 and len(expired["head_mac"]) == 16  # 5 + the erasure
        assert hub.audit_alarms == []
        head = json.loads(_audit_cli(config, "--head").stdout)  # the same head from the shell, MAC in full
        assert head["head_seq"] == 6 and head["head_mac"].startswith(expired["head_mac"])

        # two more matches, seen by the hub...
        gallery = Gallery(path, KEY, "sface")
        for _ in range(2):
            gallery.record("match", "m-staying", {"camera": "till", "score": 0.9})
        gallery.close()
        assert hub.wait_for(lambda: audits[-1]["head_seq"] == 8, 15), audits[-3:]
        # ...then someone deletes them: the chain left verifies on the terminal, as any shortened chain would...
        with sqlite3.connect(path, timeout=10) as db:
            db.execute("DELETE FROM audit_log WHERE seq > 6")
        assert _audit_cli(config).returncode == 0
        # ...but the hub remembers the head it saw, and the next health shows it went back
        assert hub.wait_for(lambda: any("went back from entry 8 to 6" in a for a in hub.audit_alarms), 15), audits

        # an edited entry: the terminal itself reports the chain broken, and members audit exits 1
        with sqlite3.connect(path, timeout=10) as db:
            db.execute("UPDATE audit_log SET action = 'export' WHERE seq = 2")
        assert hub.wait_for(lambda: bool(audits) and audits[-1]["ok"] is False, 15), audits[-3:]
        assert "broken at entry 2" in (audits[-1]["error"] or "")
        broken = _audit_cli(config)
        assert broken.returncode == 1 and "broken at entry 2" in broken.stderr
        # deleting the erasure's own record is caught on the terminal: the redactions it listed stand unexplained
        with sqlite3.connect(path, timeout=10) as db:
            db.execute("UPDATE audit_log SET action = 'enroll' WHERE seq = 2")
            db.execute("DELETE FROM audit_log WHERE seq = 6")
        orphaned = _audit_cli(config)
        assert orphaned.returncode == 1 and "entry 1 was redacted without an erasure record" in orphaned.stderr
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        hub.stop()
    assert agent.returncode == 0, (config.parent / "agent.log").read_text()[-3000:]
