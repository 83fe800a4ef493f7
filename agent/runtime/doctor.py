"""``store-agent doctor``'s checks: can this terminal run this config, and if not, what is to be done.

Each check is small and reads the machine as the agent would (the same secrets lookup, the same TLS context, the
same model verification), returning one :class:`Check` per thing looked at. Nothing is changed and no device is
opened exclusively, so doctor may run beside the service (systemd/install.sh runs it last, as the service user).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from agent.config.loader import LoadedConfig
from agent.config.schema import MqttSection, StoreConfig
from drivers.base import DeviceOptions
from drivers.secrets import SecretError, read_secret

Status = Literal["OK", "WARN", "FAIL"]
#: Below this much free space in the state directory's file system the outbox cannot hold an outage.
MIN_FREE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    """One line of doctor's report: what was checked, how it went, and what to do when it did not."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.name:<9} {self.detail}"
        return f"{text} -> {self.fix}" if self.fix and self.status != "OK" else text


def ok(name: str, detail: str) -> Check:
    return Check(name, "OK", detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "FAIL", detail, fix)


def run_checks(loaded: LoadedConfig, broker_timeout_s: float = 5.0) -> list[Check]:
    """Every check, in the order an operator fixes things: interpreter, libraries, files, devices, network."""
    config = loaded.config
    config_arg = f"-c {loaded.path}"
    return [
        check_python(),
        *check_runtime(config),
        check_opencv(config),
        *check_models(config, config_arg),
        *check_speech(config),
        *check_devices(config),
        *check_secrets(config),
        check_broker(config.mqtt, broker_timeout_s),
        check_clock(),
        check_disk(Path(config.storage.state_dir)),
    ]


def check_python() -> Check:
    """The interpreter and numpy in use (doctor runs at all only on 3.10 or newer: the package requires it)."""
    version = ".".join(map(str, sys.version_info[:3]))
    import numpy

    return ok("python", f"Python {version} at {sys.executable}, numpy {numpy.__version__}")


def check_runtime(config: StoreConfig) -> list[Check]:
    """One onnxruntime distribution, and every configured execution provider usable with it."""
    from models.runtime import installed_runtimes, provider_problem

    runtimes = installed_runtimes()
    if not runtimes:
        return [
            fail("runtime", "onnxruntime is not installed", "pip install onnxruntime (onnxruntime-gpu on a Jetson)")
        ]
    build = ", ".join(f"{name} {version}" for name, version in runtimes.items())
    if len(runtimes) > 1:
        return [
            fail(
                "runtime",
                f"{build} installed together: one shadows the other's onnxruntime module",
                "pip uninstall -y " + " ".join(runtimes) + ", then install only the one for this board",
            )
        ]
    checks = [ok("runtime", build)]
    for provider in config.models.providers:
        reason = provider_problem(provider)
        if reason is None:
            checks.append(ok("provider", f"{provider} usable"))
        else:
            checks.append(
                fail("provider", reason, "install what it names, or drop it from models.providers (CPU is used)")
            )
    return checks


def check_opencv(config: StoreConfig) -> Check:
    try:
        import cv2
    except ImportError as exc:
        return fail("opencv", f"cv2 is not importable ({exc})", "pip install opencv-python-headless (JetPack: apt "
                    "install nvidia-opencv)")  # fmt: skip
    if any(getattr(options, "type", "") == "gstreamer" for options in config.cameras if options.enabled):
        info = cv2.getBuildInformation()
        gstreamer = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if "GStreamer:" in ln), "NO")
        if not gstreamer.startswith("YES"):
            return fail(
                "opencv",
                f"OpenCV {cv2.__version__} at {cv2.__file__} has no GStreamer (a gstreamer camera is configured)",
                "use the system's OpenCV (JetPack's, or apt's python3-opencv) in a venv made with "
                "--system-site-packages, without opencv-python-headless",
            )
        return ok("opencv", f"OpenCV {cv2.__version__} with GStreamer {gstreamer}")
    return ok("opencv", f"OpenCV {cv2.__version__}")


def check_models(config: StoreConfig, config_arg: str) -> list[Check]:
    """The models the enabled pipelines load: present and matching the manifest's sha256."""
    from models.manifest import ModelError, load_manifest
    from models.provision import verify

    needed = config.pipelines.required_models()
    directory = Path(config.models.directory)
    if not needed:
        return [ok("models", "no enabled pipeline loads a model")]
    manifest = load_manifest()
    checks: list[Check] = []
    for name, pipelines in needed.items():
        users = ", ".join(pipelines)
        if name not in manifest:
            checks.append(fail("models", f"{name} (for {users}) is not in the model manifest", "fix the config"))
            continue
        try:
            verify(manifest[name], directory)
        except ModelError as exc:
            checks.append(fail("models", f"{name} (for {users}): {exc}", f"store-agent models fetch {config_arg}"))
        else:
            checks.append(ok("models", f"{name} (for {users}) verified in {directory}"))
    return checks


#: The Python module each speech engine (and the WebRTC VAD) needs, and the extra that installs it.
SPEECH_MODULES = {"vosk": "vosk", "whisper": "faster_whisper", "pocketsphinx": "pocketsphinx", "webrtc": "webrtcvad"}


def check_speech(config: StoreConfig) -> list[Check]:
    """The speech engines and VAD the enabled speech pipeline uses are installed (the speech extra)."""
    import importlib.util

    from agent.pipelines.speech.settings import SpeechSettings

    speech = config.pipelines.settings(SpeechSettings)
    if not speech.enabled:
        return []
    every = [*speech.recognizers, *(r for rs in speech.microphone_recognizers.values() for r in rs)]
    wanted = [r.engine for r in every] + ([speech.vad.kind] if speech.vad.kind == "webrtc" else [])
    checks: list[Check] = []
    for engine in dict.fromkeys(wanted):
        module = SPEECH_MODULES[engine]
        if importlib.util.find_spec(module) is None:
            what = "the WebRTC VAD (else the weaker energy VAD is used)" if engine == "webrtc" else f"engine {engine}"
            fix = "pip install 'store-edge-agent[speech]' in the agent's venv (systemd/install.sh does)"
            checks.append(fail("speech", f"{what}: Python module {module} is not installed", fix))
        else:
            checks.append(ok("speech", f"{engine}: {module} installed"))
    return checks


def _access(path: Path, what: str, name: str) -> Check:
    if not path.exists():
        return fail("device", f"{name}: {what} {path} does not exist", "plug it in, or fix the path in the config")
    if not os.access(path, os.R_OK | os.W_OK):
        return fail(
            "device",
            f"{name}: {what} {path} is not readable and writable by this user",
            "add the service user to the device's group (video, audio or dialout), or a udev rule (docs/hardware.md)",
        )
    return ok("device", f"{name}: {what} {path}")


def _tcp(host: str, port: int, timeout_s: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def check_device(options: DeviceOptions) -> Check:
    """A live device's node exists and this user may use it; replay devices need nothing."""
    name = options.name
    kind = str(getattr(options, "type", ""))
    if kind == "v4l2":
        device = getattr(options, "device", "")
        return _access(Path(f"/dev/video{device}" if isinstance(device, int) else str(device)), "camera", name)
    if kind in ("pn532", "ascii-reader", "barcode") and getattr(options, "port", None):
        return _access(Path(str(getattr(options, "port", ""))), "serial port", name)
    if kind == "picamera2":
        heaps = [Path("/dev/dma_heap/linux,cma"), Path("/dev/dma_heap/system")]
        present = [h for h in heaps if h.exists()]
        if not present:
            return fail("device", f"{name}: no DMA heap (/dev/dma_heap/*)", "is this a Raspberry Pi with libcamera?")
        try:
            import picamera2  # noqa: F401
        except (ImportError, ValueError, AttributeError) as exc:
            from drivers.camera.picamera2 import import_failure

            return fail("device", str(import_failure(name, exc)), "see docs/hardware.md, Raspberry Pi")
        return _access(present[0], "DMA heap", name)
    if kind == "rtsp":
        url = urlsplit(str(getattr(options, "url", "")))
        problem = _tcp(url.hostname or "", url.port or 554, 3.0)
        if problem:
            return fail("device", f"{name}: RTSP camera {url.hostname}:{url.port or 554}: {problem}", "check the "
                        "camera's power, network and address")  # fmt: skip
        return ok("device", f"{name}: RTSP camera {url.hostname}:{url.port or 554} answers")
    if kind == "sounddevice":
        try:
            import sounddevice

            sounddevice.query_devices(getattr(options, "device", None), kind="input")
        except Exception as exc:  # OSError without PortAudio, ValueError/PortAudioError for a missing device
            return fail("device", f"{name}: microphone: {exc}", "apt install libportaudio2; check the device name")
        return ok("device", f"{name}: microphone {getattr(options, 'device', None) or 'default'}")
    return ok("device", f"{name}: {kind} (replay, nothing to check)")


def check_devices(config: StoreConfig) -> list[Check]:
    devices = [options for _, options in config.devices()]
    return [check_device(options) for options in devices] or [ok("device", "no devices configured")]


def _secret(name: str, env: str | None, credential: str | None) -> Check:
    where = f"systemd credential {credential!r}" if credential else f"environment variable {env}"
    try:
        value = read_secret(env, credential)
    except SecretError as exc:
        return fail("secret", f"{name}: {exc}", f"make {where} readable to the service (docs/systemd.md)")
    if not value:
        return fail("secret", f"{name}: {where} is empty or not set", "put the secret there (docs/systemd.md)")
    return ok("secret", f"{name}: {where} readable")


def check_secrets(config: StoreConfig) -> list[Check]:
    """Every secret the config refers to can be read as the agent reads it (systemd credential or environment)."""
    from agent.identity.keys import load_key
    from agent.pipelines.face.settings import FaceSettings
    from agent.pipelines.serial.stage import card_readers

    checks: list[Check] = []
    mqtt = config.mqtt
    if mqtt.password_env or mqtt.password_credential:
        checks.append(_secret("mqtt password", mqtt.password_env, mqtt.password_credential))
    cards = config.identity.cards
    if card_readers(tuple(o for kind, o in config.devices() if kind == "serial")):
        checks.append(_secret("card secret", cards.secret_env, None if cards.secret_env else cards.secret_credential))
    face = config.pipelines.settings(FaceSettings)
    if face.enabled:
        try:
            load_key(face.key_env, face.key_credential, face.key_file)
        except Exception as exc:  # KeyError-like errors of the key loader, each naming what it tried
            checks.append(fail("secret", f"gallery key: {exc}", "install.sh makes /etc/store-agent/gallery-key"))
        else:
            checks.append(ok("secret", "gallery key readable"))
    for options in config.cameras:
        env, credential = getattr(options, "password_env", None), getattr(options, "password_credential", None)
        if options.enabled and (env or credential):
            checks.append(_secret(f"camera {options.name} password", env, credential))
    return checks or [ok("secret", "the config refers to no secret")]


def check_broker(mqtt: MqttSection, timeout_s: float) -> Check:
    """A TCP connection to the broker, and the TLS handshake (CA, host name, client certificate) when configured."""
    from agent.delivery.client import DeliveryError, describe_error, tls_context

    where = f"{mqtt.host}:{mqtt.port}"
    try:
        context = tls_context(mqtt)
    except DeliveryError as exc:
        return fail("broker", str(exc), "fix mqtt.tls in the config")
    try:
        with socket.create_connection((mqtt.host, mqtt.port), timeout=timeout_s) as raw:
            if context is None:
                return ok("broker", f"{where} accepts TCP connections (no TLS configured)")
            with context.wrap_socket(raw, server_hostname=mqtt.host) as tls:
                return ok("broker", f"{where} TLS handshake done ({tls.version()}, certificate verified)")
    except OSError as exc:
        return fail(
            "broker",
            f"{where}: {describe_error(exc)}",
            "check mqtt.host/port and the network; the agent buffers events meanwhile",
        )


def check_clock() -> Check:
    """Whether the kernel's clock is synchronised (adjtimex): event times and signed commands depend on it."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None or not hasattr(ctypes.CDLL(libc_name), "adjtimex"):
        return Check("clock", "WARN", "cannot ask the kernel whether the clock is synchronised")
    timex = ctypes.create_string_buffer(512)  # struct timex with modes = 0: read only, no privilege needed
    state = ctypes.CDLL(libc_name, use_errno=True).adjtimex(timex)
    status = struct.unpack_from("i", timex, 40 if struct.calcsize("l") == 8 else 20)[0]
    if state == -1:
        return Check("clock", "WARN", f"adjtimex failed: {os.strerror(ctypes.get_errno())}")
    if state == 5 or status & 0x40:  # TIME_ERROR / STA_UNSYNC
        return fail(
            "clock",
            "the system clock is not synchronised (no NTP)",
            "timedatectl set-ntp true (systemd-timesyncd) or chrony; signed commands fail past trust.clock_skew_s",
        )
    return ok("clock", "the system clock is synchronised")


def check_disk(state_dir: Path) -> Check:
    existing = next((p for p in (state_dir, *state_dir.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    detail = f"{free / 2**30:.1f} GiB free for {state_dir}"
    if free < MIN_FREE_BYTES:
        return fail("disk", detail, f"free at least {MIN_FREE_BYTES // 2**20} MiB (the outbox holds outages there)")
    if not os.access(existing, os.W_OK | os.X_OK):
        return fail("disk", f"{existing} is not writable by this user", "run as the service user (StateDirectory=)")
    return ok("disk", detail)
