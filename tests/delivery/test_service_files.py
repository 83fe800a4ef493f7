"""The systemd unit's hardening score and the generated MQTT reference being current."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from agent.delivery import docs
from tests.delivery.conftest import REPO

UNIT = REPO / "systemd" / "store-agent.service"


def test_unit_hardening_score_at_most_2() -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    out = subprocess.run([tool, "security", "--offline=true", str(UNIT)], capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout + out.stderr)
    if match is None and "offline" in out.stderr:
        pytest.skip(f"this systemd-analyze cannot score offline: {out.stderr.strip()}")
    assert match is not None, out.stdout + out.stderr
    assert float(match.group(1)) <= 2.0, out.stdout


def test_unit_has_the_required_settings() -> None:
    text = UNIT.read_text()
    for setting in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "StartLimitBurst=",
        "SupplementaryGroups=video audio dialout",
        "StateDirectory=store-agent",
        "LoadCredential=",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "AmbientCapabilities=\n",
        "DevicePolicy=closed",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
    ):
        assert setting in text, setting


def test_mqtt_reference_is_current() -> None:
    committed = (REPO / "docs" / "mqtt.md").read_text(encoding="utf-8")
    assert committed == docs.render(), "docs/mqtt.md is stale: run `python -m agent.delivery.docs --write`"
