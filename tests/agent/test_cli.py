"""The ``store-agent`` command line: exit codes, messages, replay output and clean SIGTERM shutdown."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.config.schema import LoggingSection
from agent.logsetup import configure_logging
from agent.schemas import validate_payload
from tests.conftest import REPO
from tests.media import config_text


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_version() -> None:
    from agent import __version__

    result = cli("version")
    assert result.returncode == 0 and result.stdout.strip() == f"store-agent {__version__}"


def test_check_config_ok_prints_a_summary() -> None:
    result = cli("check-config", "config/store-example.yaml")
    assert result.returncode == 0, result.stderr
    assert "config/store-example.yaml: valid" in result.stdout
    assert "camera    entrance" in result.stdout


def test_check_config_invalid_exits_78_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "store.yaml"
    bad.write_text(config_text(tmp_path, "cameras:\n  - {name: c, type: test-pattern, fps: -5}\n"))
    result = cli("check-config", str(bad))
    assert result.returncode == 78
    assert f"{bad}:8: cameras[0].fps: must be greater than 0 (got -5)" in result.stderr
    assert "Traceback" not in result.stderr
    debug = cli("--debug", "check-config", str(bad))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_missing_config_file_exits_78() -> None:
    result = cli("check-config", "/nonexistent/store.yaml")
    assert result.returncode == 78 and "cannot read config file" in result.stderr


def test_usage_error_exits_2() -> None:
    assert cli("no-such-command").returncode == 2


def test_replay_demo_prints_schema_valid_events() -> None:
    result = cli("replay", "--config", "config/demo.yaml", "--print-events")
    assert result.returncode == 0, result.stderr
    payloads = [json.loads(line) for line in result.stdout.splitlines()]
    assert {p["type"] for p in payloads} >= {"device.state", "scene.motion"}
    for payload in payloads:
        validate_payload(payload)
    assert "replay finished" in result.stderr


def test_replay_refuses_sources_that_never_end(tmp_path: Path) -> None:
    path = tmp_path / "store.yaml"
    path.write_text(config_text(tmp_path, "cameras:\n  - {name: c, type: test-pattern}\n"))
    result = cli("replay", "--config", str(path))
    assert result.returncode == 78 and "loops forever" in result.stderr


def test_sigterm_stops_within_5_s_and_concludes_open_episodes(tmp_path: Path) -> None:
    path = tmp_path / "store.yaml"
    path.write_text(
        config_text(
            tmp_path,
            "cameras:\n  - {name: c, type: test-pattern, fps: 25, walkers: 3, width: 320, height: 240}\n"
            "pipelines:\n  motion: {enabled: true, end_after_s: 30}\n",
        ).replace("level: WARNING", "level: INFO")
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(path), "--print-events"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    seen: list[dict[str, object]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(json.loads(line))
        if seen[-1]["type"] == "scene.motion":
            break
    assert seen and seen[-1]["type"] == "scene.motion" and seen[-1]["state"] == "started"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, err
    assert elapsed < 5.0, f"shutdown took {elapsed:.1f} s"
    rest = [json.loads(line) for line in out.splitlines()]
    # the open motion episode is concluded on the way down, not lost
    assert any(p["type"] == "scene.motion" and p["state"] == "ended" for p in rest)
    assert "received SIGTERM, stopping" in err


def test_check_config_warns_about_unsafe_settings(tmp_path: Path) -> None:
    """A broker password over plain TCP to another host, open privileged commands, no hub key: each a warning;
    the same password to a loopback broker, or over TLS, is no warning."""
    risky = tmp_path / "risky.yaml"
    risky.write_text(
        config_text(tmp_path, "")
        + "mqtt: {host: 192.0.2.10, username: s1-t1, password_env: MQTT_PASSWORD, ack: hub}\n"
        + "trust: {open_commands: [ping, erase-member]}\n"
    )
    result = cli("check-config", str(risky))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert any("plain TCP to 192.0.2.10:1883" in w for w in warnings), warnings
    assert any("erase-member without the hub's signature" in w for w in warnings), warnings
    assert any("trust.hub_keys is empty" in w for w in warnings), warnings
    assert any("ack: hub with no trust.hub_keys" in w for w in warnings), warnings
    (tmp_path / "hub.pub").write_text("store-agent-hub-v1 x y\n")  # only its existence is validated here
    local = tmp_path / "local.yaml"
    local.write_text(
        config_text(tmp_path, "")
        + "mqtt: {host: 127.0.0.1, username: s1-t1, password_env: MQTT_PASSWORD, ack: hub}\n"
        + f"trust: {{hub_keys: [{tmp_path / 'hub.pub'}]}}\n"
    )
    result = cli("check-config", str(local))
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("warning: ")] == []


def test_logging_settings_shape_what_the_agent_logs(tmp_path: Path) -> None:
    """``logging.level`` is the root level, ``logging.levels`` sets single loggers, ``logging.format`` 'journal'
    leaves the timestamps to journald and starts each line with its priority, 'text' writes timestamps."""
    camera = "cameras:\n  - {name: cam, type: test-pattern, frames: 20, realtime: false, width: 160, height: 120}\n"

    def replay(logging: str) -> list[str]:
        path = tmp_path / "store.yaml"
        path.write_text(config_text(tmp_path, camera).replace("logging: {level: WARNING}", f"logging: {logging}"))
        result = cli("replay", "--config", str(path))
        assert result.returncode == 0, result.stderr
        return [line for line in result.stderr.splitlines() if not line.startswith("replay finished")]

    journal = replay("{level: INFO, format: journal}")
    assert "<6>INFO agent.source.cam: starting -> online" in journal, journal
    assert any(line.startswith("<6>INFO agent.runtime.agent: ready in ") for line in journal), journal
    text = replay("{level: INFO, format: text}")
    stamped = [line for line in text if "agent.source.cam: starting -> online" in line]
    assert len(stamped) == 1 and re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO agent\.source\.cam", stamped[0])
    assert replay("{level: WARNING, format: journal}") == []  # nothing at WARNING or above in a clean replay
    quieter = replay("{level: INFO, format: journal, levels: {agent.source: WARNING}}")
    assert not [line for line in quieter if "agent.source." in line]
    assert any(line.startswith("<6>INFO agent.runtime.agent: ready in ") for line in quieter), quieter
    louder = replay("{level: WARNING, format: journal, levels: {agent.source.cam: INFO}}")
    assert louder[0] == "<6>INFO agent.source.cam: starting -> online" and not [x for x in louder if "runtime" in x]


def test_journal_format_gives_every_line_its_syslog_priority(capsys: pytest.CaptureFixture[str]) -> None:
    """journald reads ``<N>`` at the start of each line as its priority (3 err, 4 warning, 6 info, 7 debug), so
    ``journalctl -p warning`` keeps the warning, the error and every line of its traceback, and nothing else."""
    configure_logging(LoggingSection(level="DEBUG", format="journal"))
    log = logging.getLogger("agent.test.journal")
    try:
        log.debug("looking")
        log.info("online")
        log.warning("broker slow")
        try:
            raise RuntimeError("camera gone")
        except RuntimeError:
            log.exception("worker failed")
        log.critical("cannot go on")
    finally:
        logging.getLogger().handlers.clear()
    lines = capsys.readouterr().err.splitlines()
    assert lines[:4] == [
        "<7>DEBUG agent.test.journal: looking",
        "<6>INFO agent.test.journal: online",
        "<4>WARNING agent.test.journal: broker slow",
        "<3>ERROR agent.test.journal: worker failed",
    ]
    traceback = lines[4:-1]
    assert traceback[0] == "<3>Traceback (most recent call last):" and traceback[-1] == "<3>RuntimeError: camera gone"
    assert all(line.startswith("<3>") for line in traceback)
    assert lines[-1] == "<2>CRITICAL agent.test.journal: cannot go on"
    # what `journalctl -p warning` keeps: priorities 0..4
    kept = [line for line in lines if int(re.match(r"<(\d)>", line)[1]) <= 4]  # type: ignore[index]
    assert len(kept) == len(lines) - 2 and not [line for line in kept if "looking" in line or "online" in line]
    configure_logging(LoggingSection(level="INFO", format="text"))
    logging.getLogger("agent.test.journal").info("plain")
    logging.getLogger().handlers.clear()
    assert re.match(r"\d{4}-\d\d-\d\d [\d:,]+ INFO agent\.test\.journal: plain$", capsys.readouterr().err.strip())


def test_version_flag_and_command() -> None:
    from agent import __version__

    flag = cli("--version")
    assert flag.returncode == 0 and flag.stdout.strip() == f"store-agent {__version__}"


def test_debug_and_log_level_are_accepted_anywhere_and_honoured(tmp_path: Path) -> None:
    """Before or after the command (or the action of a command with actions), for every command."""
    from agent import __version__

    for args in (
        ["--log-level", "debug", "check-config", "config/demo.yaml"],
        ["check-config", "--log-level", "DEBUG", "--config", "config/demo.yaml"],
        ["check-config", "-c", "config/demo.yaml", "--debug"],
        ["--debug", "models", "list", "--dir", str(tmp_path)],
        ["hub", "keygen", "--debug", "--out", str(tmp_path / "hub")],
    ):
        result = cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert f"DEBUG agent.cli: store-agent {__version__}: {' '.join(args)}" in result.stderr, (args, result.stderr)
    quiet = cli("check-config", "config/demo.yaml")
    assert "DEBUG" not in quiet.stderr
    # a command that reads the config's logging section: the option wins over logging.level (WARNING here)
    path = tmp_path / "store.yaml"
    camera = "cameras:\n  - {name: cam, type: test-pattern, frames: 5, realtime: false, width: 160, height: 120}\n"
    path.write_text(config_text(tmp_path, camera))
    for args in (
        ["--log-level", "INFO", "replay", "-c", str(path)],
        ["replay", "-c", str(path), "--log-level", "INFO"],
    ):
        result = cli(*args)
        assert result.returncode == 0 and "INFO agent.source.cam: starting -> online" in result.stderr, result.stderr
    assert "starting -> online" not in cli("replay", "-c", str(path)).stderr


def test_check_config_takes_the_path_as_config_option_or_positional(tmp_path: Path) -> None:
    for args in (["--config", "config/demo.yaml"], ["-c", "config/demo.yaml"], ["config/demo.yaml"]):
        result = cli("check-config", *args)
        assert result.returncode == 0 and "config/demo.yaml: valid" in result.stdout, (args, result.stderr)
    both = cli("check-config", "config/demo.yaml", "--config", "config/store-example.yaml")
    assert both.returncode == 2 and "two config files given" in both.stderr
    neither = cli("check-config")
    assert neither.returncode == 2 and "the config file is required: --config PATH" in neither.stderr


def test_bad_input_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    """The inputs that once raised: a date in the wrong format, a frame past the end of the clip."""
    from tests.media import write_video

    clip = write_video(tmp_path / "door.avi", frames=12)
    path = tmp_path / "store.yaml"
    path.write_text(
        config_text(
            tmp_path,
            f"cameras:\n  - {{name: door, type: video-file, path: {clip}, realtime: false}}\n"
            "pipelines:\n  people:\n    scenes:\n      door: {zones: [{name: a, points: [[0, 0], [1, 0], [1, 1]]}]}\n",
        )
    )
    enroll = cli(
        "members", "enroll", "-c", str(path), "--member-id", "m1", "--consent-ref", "F-1", "--expires", "31/01/2027",
        str(tmp_path / "a.jpg"),
    )  # fmt: skip
    assert enroll.returncode == 2 and "Traceback" not in enroll.stderr
    assert "argument --expires: '31/01/2027' is not a date written YYYY-MM-DD" in enroll.stderr
    zones = cli(
        "zones", "-c", str(path), "--camera", "door", "--snapshot", str(tmp_path / "z.png"), "--frame", "100000"
    )
    assert zones.returncode == 2 and "Traceback" not in zones.stderr
    assert zones.stderr.strip() == "error: --frame 100000: camera door ends after 12 frame(s) (frames count from 0)"
    drawn = cli("zones", "-c", str(path), "--camera", "door", "--snapshot", str(tmp_path / "z.png"), "--frame", "11")
    assert drawn.returncode == 0, drawn.stderr
    unwritable = cli("zones", "-c", str(path), "--camera", "door", "--snapshot", str(tmp_path / "z.bmpx"))
    assert (
        unwritable.returncode == 1
        and unwritable.stderr.startswith("error: cannot write")
        and "Traceback" not in unwritable.stderr
    )
