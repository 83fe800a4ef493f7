#!/usr/bin/env bash
# Set up a development/demo environment in .venv: system packages where missing, then the agent itself.
# Usage: ./scripts/setup.sh [--dev]     (--dev adds the test and lint tools)
# The speech (Whisper, PocketSphinx, WebRTC VAD, OpenCC) and catalog (faiss) extras are included.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="[speech,catalog]"
[ "${1:-}" = "--dev" ] && extras="[dev,speech,catalog]"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# System packages: python venv support; the mosquitto broker (tests start their own, the demo uses it when
# no broker is reachable); with --dev, a GStreamer RTSP server that the RTSP camera tests stream a real video from,
# and PortAudio, which the live-microphone test drives through an ALSA file PCM (no sound card needed).
missing=()
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
if [ "${1:-}" = "--dev" ]; then
    /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null \
        || missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good)
    /sbin/ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || missing+=(libportaudio2)
fi
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || echo "warning: could not install ${missing[*]}; the tests that need them will skip and say why" >&2
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]})")
PY

# On a Raspberry Pi, picamera2 comes from apt (python3-picamera2): the venv must see system packages.
venv_flags=()
if [ -e /usr/lib/python3/dist-packages/picamera2 ]; then venv_flags+=(--system-site-packages); fi
[ -x .venv/bin/python ] || python3 -m venv "${venv_flags[@]}" .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras}"
echo "ready: .venv/bin/store-agent --help"
