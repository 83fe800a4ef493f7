"""The systemd unit's hardening score and the generated MQTT reference being current."""

from __future__ import annotations

import os
import re
import subprocess

from agent import apidocs
from tests.delivery.conftest import REPO
from tests.prereq import require, require_tool

UNIT = REPO / "systemd" / "store-agent.service"


def test_unit_hardening_score_at_most_2() -> None:
    tool = require_tool("systemd-analyze", "apt install systemd")
    out = subprocess.run([tool, "security", "--offline=true", str(UNIT)], capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout + out.stderr)
    if match is None and "offline" in out.stderr:
        require("systemd-analyze", f"this one cannot score offline: {out.stderr.strip()}")
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
        "Wants=network-online.target time-sync.target",
        "After=network-online.target time-sync.target",
    ):
        assert setting in text, setting


def test_mqtt_reference_is_current() -> None:
    committed = (REPO / "docs" / "mqtt.md").read_text(encoding="utf-8")
    assert committed == apidocs.render(), "docs/mqtt.md is stale: run `python -m agent.apidocs --write`"


INSTALL = REPO / "systemd" / "install.sh"
UNIT_TARGET = "/etc/systemd/system/store-agent.service"


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "STORE_AGENT_DRY_RUN": "1"}  # dry even if the flag broke
    return subprocess.run(["sh", str(INSTALL), *args], capture_output=True, text=True, env=env, timeout=30)


def test_install_script_dry_run_shows_the_plan_and_changes_nothing() -> None:
    existed = {p: os.path.exists(p) for p in (UNIT_TARGET, "/etc/store-agent", "/opt/store-agent")}
    config = REPO / "config" / "demo.yaml"
    done = _install("--dry-run", str(config))
    assert done.returncode == 0, done.stderr
    plan = [line[2:] for line in done.stdout.splitlines() if line.startswith("+ ")]
    print("\n".join(plan))
    expected_in_order = [
        "python3 -m venv",
        f"/opt/store-agent/venv/bin/pip install --quiet {REPO}",
        "install -d -m 0750 -g store-agent /etc/store-agent",
        f"install -m 0640 -g store-agent {config} /etc/store-agent/store.yaml",
        f"install -m 0644 {UNIT} {UNIT_TARGET}",
        "systemctl daemon-reload",
        "/opt/store-agent/venv/bin/store-agent check-config /etc/store-agent/store.yaml",
        "systemctl enable --now store-agent.service",
    ]
    position = 0
    for wanted in expected_in_order:
        found = next((i for i, line in enumerate(plan) if i >= position and line.startswith(wanted)), None)
        assert found is not None, f"{wanted!r} missing or out of order in the plan"
        position = found
    for group in ("video", "audio", "dialout"):
        if subprocess.run(["getent", "group", group], capture_output=True).returncode == 0:
            assert f"usermod -a -G {group} store-agent" in plan
    assert done.stdout.rstrip().endswith("dry run; nothing was changed")
    assert {p: os.path.exists(p) for p in existed} == existed


def test_install_script_rejects_bad_arguments_clearly() -> None:
    bad = _install("--dry-run", "--frobnicate")
    assert bad.returncode == 64 and "unknown option --frobnicate" in bad.stderr
    missing = _install("--dry-run", "/nonexistent/store.yaml")
    assert missing.returncode == 66 and "/nonexistent/store.yaml does not exist" in missing.stderr
