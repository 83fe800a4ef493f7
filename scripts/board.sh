#!/bin/sh
# Which board this is, and what an install needs on it. Sourced by systemd/install.sh and scripts/setup.sh;
# run directly, it prints its decisions as KEY=value lines (tests/test_install.py reads them):
#   sh scripts/board.sh                      # this machine
#   STORE_AGENT_BOARD=pi sh scripts/board.sh # what an install on a Raspberry Pi would do
# STORE_AGENT_BOARD=x86|pi|jetson overrides the detection, STORE_AGENT_ARCH the machine (uname -m), so an install
# for another board can be planned (and tested) anywhere. docs/hardware.md explains each board's choices.

# x86: any other Debian/Ubuntu machine (x86-64, or an arm64 box that is neither a Pi nor a Jetson).
board_detect() {
    if [ -n "${STORE_AGENT_BOARD:-}" ]; then
        echo "$STORE_AGENT_BOARD"
    elif [ -f /etc/nv_tegra_release ] || grep -qs nvidia,tegra /proc/device-tree/compatible; then
        echo jetson
    elif grep -qs "Raspberry Pi" /proc/device-tree/model; then
        echo pi
    else
        echo x86
    fi
}

# Sets BOARD, BOARD_ARCH, BOARD_APT (apt packages), BOARD_VENV (flags for python3 -m venv), BOARD_EXTRAS (the
# agent's pip extras), BOARD_PIP (more pip arguments), BOARD_NOTE (what to know) and BOARD_ERROR (why this
# machine cannot run the agent; empty when it can).
board_plan() {
    BOARD=$(board_detect)
    BOARD_ARCH=${STORE_AGENT_ARCH:-$(uname -m)}
    # PortAudio for microphones; the speech extra's PocketSphinx is what the example config's speech pipeline uses.
    BOARD_APT="python3-venv libportaudio2"
    BOARD_VENV=""
    BOARD_EXTRAS="speech,catalog"
    BOARD_PIP=""
    BOARD_NOTE=""
    BOARD_ERROR=""
    case "$BOARD" in
        x86)
            BOARD_NOTE="onnxruntime (CPU) and opencv-python-headless from PyPI"
            ;;
        pi)
            # picamera2, libcamera and simplejpeg come from Raspberry Pi OS's apt, built against Debian's numpy 1.x:
            # the venv sees them (--system-site-packages) and the pi extra keeps numpy below 2 and OpenCV at a
            # release that accepts numpy 1 (opencv-python-headless 4.12 needs numpy 2: "dtype size changed").
            if [ "$BOARD_ARCH" != aarch64 ]; then
                BOARD_ERROR="Raspberry Pi OS on $BOARD_ARCH: onnxruntime publishes no wheel for it; install Raspberry Pi OS (64-bit), bookworm or later"
            fi
            BOARD_APT="$BOARD_APT python3-picamera2 python3-libcamera"
            BOARD_VENV="--system-site-packages"
            BOARD_EXTRAS="pi,$BOARD_EXTRAS"
            BOARD_NOTE="picamera2 from apt; numpy<2 and opencv-python-headless<4.12 (the pi extra)"
            ;;
        jetson)
            # JetPack 6: Python 3.10; onnxruntime-gpu from NVIDIA's index (none on PyPI for aarch64); the agent's
            # own requirements leave out onnxruntime and opencv-python-headless on a Tegra kernel, so the CPU
            # package cannot shadow the GPU one and JetPack's OpenCV (with GStreamer) stays the cv2 in use.
            if [ "$BOARD_ARCH" != aarch64 ]; then
                BOARD_ERROR="Jetson on $BOARD_ARCH: JetPack 6 is aarch64"
            fi
            # build-essential: pocketsphinx publishes no wheel for Python 3.10 on aarch64; pip builds it from source
            BOARD_APT="$BOARD_APT nvidia-opencv build-essential"
            BOARD_VENV="--system-site-packages"
            BOARD_EXTRAS="jetson,$BOARD_EXTRAS"
            BOARD_PIP="--extra-index-url ${STORE_AGENT_JETSON_INDEX:-https://pypi.jetson-ai-lab.io/jp6/cu126}"
            BOARD_NOTE="onnxruntime-gpu from NVIDIA's index, JetPack's OpenCV with GStreamer, TensorRT engines cached in the state directory"
            ;;
        *)
            BOARD_ERROR="unknown board '$BOARD' (STORE_AGENT_BOARD must be x86, pi or jetson)"
            ;;
    esac
}

# Run directly (not sourced): print the decisions.
case "${0##*/}" in
    board.sh)
        board_plan
        printf 'BOARD=%s\nBOARD_ARCH=%s\nBOARD_APT=%s\nBOARD_VENV=%s\nBOARD_EXTRAS=%s\nBOARD_PIP=%s\nBOARD_NOTE=%s\nBOARD_ERROR=%s\n' \
            "$BOARD" "$BOARD_ARCH" "$BOARD_APT" "$BOARD_VENV" "$BOARD_EXTRAS" "$BOARD_PIP" "$BOARD_NOTE" "$BOARD_ERROR"
        [ -z "$BOARD_ERROR" ]
        ;;
esac
