#!/usr/bin/env bash
# Set up a development/demo environment in .venv: system packages where missing, then the agent itself.
# Usage: ./scripts/setup.sh [--dev]     (--dev adds the test and lint tools)
# The speech (Whisper, PocketSphinx, WebRTC VAD, OpenCC) and catalog (faiss) extras are included, and the board's
# own choices (scripts/board.sh: the pi or jetson extra, a venv that sees apt's picamera2 or JetPack's OpenCV).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=board.sh
. scripts/board.sh
board_plan
if [ -n "$BOARD_ERROR" ]; then
    echo "setup.sh: $BOARD_ERROR" >&2
    exit 69
fi
extras="[$BOARD_EXTRAS]"
[ "${1:-}" = "--dev" ] && extras="[dev,$BOARD_EXTRAS]"

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
if [ "$BOARD" = pi ]; then
    /usr/bin/python3 -c 'import picamera2' 2>/dev/null || missing+=(python3-picamera2 python3-libcamera)
elif [ "$BOARD" = jetson ]; then
    /usr/bin/python3 -c 'import cv2' 2>/dev/null || missing+=(nvidia-opencv)
fi
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || echo "warning: could not install ${missing[*]}; the tests that need them will skip and say why" >&2
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"Python 3.10 or newer is needed (this is {sys.version.split()[0]})")
PY

# pi / jetson: the venv sees system packages (apt's picamera2 and libcamera; JetPack's OpenCV with GStreamer).
# shellcheck disable=SC2086
[ -x .venv/bin/python ] || python3 -m venv $BOARD_VENV .venv
.venv/bin/python -m pip install -q --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $BOARD_PIP -e ".${extras}"
echo "ready ($BOARD board): .venv/bin/store-agent --help"
