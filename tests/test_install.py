"""Each board's install decisions (scripts/board.sh, systemd/install.sh, pyproject's markers), and a plain
``pip install`` of the wheel that still finds its example configs and runs the demo.

The boards themselves are not here: the decisions are made by the same script and metadata that an install on a
Raspberry Pi or a Jetson runs, driven with STORE_AGENT_BOARD / STORE_AGENT_ARCH and the board's marker values.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest requires tomli on 3.10
    import tomli as tomllib

BOARD_SH = REPO / "scripts" / "board.sh"
INSTALL = REPO / "systemd" / "install.sh"

#: PEP 508 marker values as each board reports them (uname -r / -m, the system Python).
BOARD_ENV = {
    "x86": {"platform_machine": "x86_64", "platform_release": "6.1.0-28-amd64", "python_version": "3.11"},
    "pi": {"platform_machine": "aarch64", "platform_release": "6.6.51+rpt-rpi-v8", "python_version": "3.11"},
    "jetson": {"platform_machine": "aarch64", "platform_release": "5.15.148-tegra", "python_version": "3.10"},
}


def board(name: str, arch: str = "aarch64") -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "STORE_AGENT_BOARD": name, "STORE_AGENT_ARCH": arch}
    done = subprocess.run(["sh", str(BOARD_SH)], capture_output=True, text=True, env=env, timeout=30, check=False)
    values = dict(line.split("=", 1) for line in done.stdout.splitlines())
    values["rc"] = str(done.returncode)
    return values


def install_plan(name: str, arch: str = "aarch64") -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "STORE_AGENT_DRY_RUN": "1",  # dry even if the flag broke
        "STORE_AGENT_BOARD": name,
        "STORE_AGENT_ARCH": arch,
    }
    return subprocess.run(
        ["sh", str(INSTALL), "--dry-run"], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def requirements(name: str, extras: list[str]) -> list[Requirement]:
    """What pip installs on board ``name`` for the project with ``extras``: pyproject's markers evaluated there."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    chosen: list[Requirement] = []
    for extra in ["", *extras]:
        for text in project["optional-dependencies"][extra] if extra else project["dependencies"]:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({**BOARD_ENV[name], "extra": extra}):
                chosen.append(req)
    return chosen


def names(reqs: list[Requirement]) -> set[str]:
    return {r.name for r in reqs}


def test_each_board_gets_its_own_venv_packages_and_extras() -> None:
    x86, pi, jetson = board("x86", "x86_64"), board("pi"), board("jetson")
    assert [x86["rc"], pi["rc"], jetson["rc"]] == ["0", "0", "0"]
    assert x86["BOARD_VENV"] == "" and x86["BOARD_EXTRAS"] == "speech,catalog" and x86["BOARD_PIP"] == ""
    # Raspberry Pi OS: picamera2/libcamera from apt, seen through the system site-packages; the pi extra
    assert pi["BOARD_VENV"] == "--system-site-packages" and pi["BOARD_EXTRAS"] == "pi,speech,catalog"
    assert {"python3-picamera2", "python3-libcamera", "libportaudio2"} <= set(pi["BOARD_APT"].split())
    # JetPack: JetPack's OpenCV through the system site-packages, onnxruntime-gpu from NVIDIA's index
    assert jetson["BOARD_VENV"] == "--system-site-packages" and jetson["BOARD_EXTRAS"] == "jetson,speech,catalog"
    assert "nvidia-opencv" in jetson["BOARD_APT"].split()
    assert jetson["BOARD_PIP"] == "--extra-index-url https://pypi.jetson-ai-lab.io/jp6/cu126"


def test_boards_that_cannot_run_the_agent_are_refused() -> None:
    armv7 = board("pi", "armv7l")
    assert armv7["rc"] == "1" and "armv7l" in armv7["BOARD_ERROR"] and "64-bit" in armv7["BOARD_ERROR"]
    assert board("jetson", "x86_64")["rc"] == "1"
    unknown = board("beaglebone")
    assert unknown["rc"] == "1" and "x86, pi or jetson" in unknown["BOARD_ERROR"]
    refused = install_plan("pi", "armv7l")
    assert refused.returncode == 69 and "onnxruntime publishes no wheel" in refused.stderr
    assert not any(line.startswith("+ ") for line in refused.stdout.splitlines())  # refused before any change


@pytest.mark.parametrize("name", ["x86", "pi", "jetson"])
def test_install_plan_follows_the_board(name: str) -> None:
    done = install_plan(name, "x86_64" if name == "x86" else "aarch64")
    assert done.returncode == 0, done.stderr
    plan = [line[2:] for line in done.stdout.splitlines() if line.startswith("+ ")]
    decided = board(name, "x86_64" if name == "x86" else "aarch64")
    assert f"apt-get install -y --no-install-recommends {decided['BOARD_APT']}" in plan
    venv = [line for line in plan if " -m venv " in line]
    assert venv == [" ".join(["python3 -m venv", *decided["BOARD_VENV"].split(), "/opt/store-agent/venv"])]
    pip = [line for line in plan if line.startswith("/opt/store-agent/venv/bin/pip install --quiet ") and "[" in line]
    assert pip == [" ".join(["/opt/store-agent/venv/bin/pip install --quiet", *decided["BOARD_PIP"].split(),
                             f"{REPO}[{decided['BOARD_EXTRAS']}]"])]  # fmt: skip
    dropin = "/etc/systemd/system/store-agent.service.d/jetson.conf"
    assert any(line.endswith(dropin) for line in plan) == (name == "jetson")
    # the self-check runs last, as the service user with the service's credentials
    doctor = plan[-1]
    assert doctor.startswith("systemd-run ") and "-p User=store-agent" in doctor
    assert doctor.endswith("/opt/store-agent/venv/bin/store-agent doctor --config /etc/store-agent/store.yaml")
    assert f"board {name}" in done.stdout


def test_jetson_never_installs_the_cpu_onnxruntime_or_pip_opencv() -> None:
    jetson = requirements("jetson", ["jetson", "speech", "catalog"])
    assert "onnxruntime-gpu" in names(jetson)
    assert not names(jetson) & {"onnxruntime", "opencv-python-headless", "opencv-python", "faster-whisper"}
    numpy = [r for r in jetson if r.name == "numpy"]
    assert all(r.specifier.contains("1.26.4") for r in numpy) and not all(r.specifier.contains("2.0.0") for r in numpy)
    # the jetson extra anywhere else adds nothing: it can never put onnxruntime-gpu beside onnxruntime
    for other in ("x86", "pi"):
        assert names(requirements(other, ["jetson"])) == names(requirements(other, []))
        assert "onnxruntime-gpu" not in names(requirements(other, ["jetson", "speech", "catalog"]))


def test_pi_keeps_numpy_1_and_an_opencv_that_accepts_it() -> None:
    pi = requirements("pi", ["pi", "speech", "catalog"])
    numpy = [r for r in pi if r.name == "numpy"]
    opencv = [r for r in pi if r.name == "opencv-python-headless"]
    assert not all(r.specifier.contains("2.0.0") for r in numpy)  # numpy 2 is excluded
    assert all(r.specifier.contains("1.26.4") for r in numpy)
    assert all(r.specifier.contains("4.11.0.86") for r in opencv)  # the last release built for numpy 1
    assert not all(r.specifier.contains("4.12.0.88") for r in opencv)  # needs numpy >= 2
    assert {"onnxruntime", "picamera2", "pocketsphinx"} <= names(pi)
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    every = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    assert not [r for r in every if "armv7l" in r]  # no onnxruntime wheel exists for 32-bit Raspberry Pi OS


def test_x86_gets_the_cpu_runtime_and_pip_opencv() -> None:
    x86 = requirements("x86", ["speech", "catalog"])
    assert {"onnxruntime", "opencv-python-headless", "faster-whisper", "pocketsphinx", "faiss-cpu"} <= names(x86)
    assert "onnxruntime-gpu" not in names(x86) and "picamera2" not in names(x86)


def test_unit_allows_both_pi_camera_dma_heaps() -> None:
    unit = (REPO / "systemd" / "store-agent.service").read_text(encoding="utf-8")
    assert "DeviceAllow=/dev/dma_heap/linux,cma rw" in unit.splitlines()  # Pi 4 and earlier
    assert "DeviceAllow=/dev/dma_heap/system rw" in unit.splitlines()  # Pi 5
    dropin = (REPO / "systemd" / "jetson.conf").read_text(encoding="utf-8").splitlines()
    assert "DeviceAllow=" in dropin and "DevicePolicy=auto" in dropin


AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _nobody_can_run_python() -> bool:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import yaml"], capture_output=True, timeout=60)
    return probe.returncode == 0


def test_plain_wheel_install_ships_the_examples_and_runs_the_demo() -> None:
    """What systemd/install.sh does: a normal (not editable) install; then `store-agent demo` from elsewhere, as a
    user who cannot write to the installed package where the test can switch users (root with setpriv)."""
    with tempfile.TemporaryDirectory(prefix="store-agent-wheel-") as tmp:
        os.chmod(tmp, 0o755)  # other users may read the installed package (and nothing more)
        _wheel_demo(Path(tmp))


def _wheel_demo(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *wheels.glob("*.whl")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    examples = target / "agent" / "examples"
    assert not examples.is_symlink()
    for shipped in ("demo.yaml", "store-example.yaml", "demo/till-scanner.script"):
        assert (examples / shipped).read_bytes() == (REPO / "config" / shipped).read_bytes(), shipped

    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(target), "HOME": str(home), "LANG": "C.UTF-8"}
    command = [sys.executable, "-m", "agent", "demo", "--timeout", "90"]
    if _nobody_can_run_python():
        shutil.chown(home, user="nobody")
        command = [*AS_NOBODY, *command]
    demo = subprocess.run(command, cwd=home, capture_output=True, text=True, env=env, timeout=180, check=False)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "cannot read config file" not in demo.stderr
    assert "events accepted, all delivered" in demo.stderr
    state = home / ".local" / "state" / "store-agent" / "demo"
    assert f"keeping the demo's state in {state}" in demo.stderr
    assert (state / "state").is_dir()
    assert not (target / "agent" / "var").exists()  # nothing written inside the installed package
