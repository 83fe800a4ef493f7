#!/bin/sh
# Install store-agent as a systemd service on Debian / Ubuntu (x86), Raspberry Pi OS (64-bit) or JetPack 6.
# Run as root from a checkout:
#   sudo systemd/install.sh [--dry-run] [path/to/store.yaml]
# Creates the store-agent user (groups video audio dialout), a venv in /opt/store-agent/venv with the extras the
# board and the example config need, /etc/store-agent (config and credentials), /var/lib/store-agent (state, via
# StateDirectory=), enables the unit and ends with `store-agent doctor` (docs/systemd.md).
# --dry-run (any user; or STORE_AGENT_DRY_RUN=1) prints every command that would change the system, prefixed with "+ ", and changes nothing.
# STORE_AGENT_BOARD=x86|pi|jetson overrides the board detection (scripts/board.sh says what each board gets).
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/store-agent
CONF_DIR=/etc/store-agent
UNIT=/etc/systemd/system/store-agent.service
DRY_RUN=${STORE_AGENT_DRY_RUN:-0}  # the environment can force a dry run too (the tests set both)
CONFIG=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        -*) echo "install.sh: unknown option $arg (use --dry-run or a config path)" >&2; exit 64 ;;
        *) CONFIG=$arg ;;
    esac
done

# Every command that changes the system goes through run: printed in a dry run, executed otherwise.
run() {
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "+ $*"
    else
        "$@"
    fi
}

if [ -n "$CONFIG" ] && [ ! -f "$CONFIG" ]; then
    echo "install.sh: config file $CONFIG does not exist" >&2
    exit 66
fi
if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo $0), or with --dry-run to see what it would do" >&2
    exit 1
fi
for file in "$SRC/pyproject.toml" "$SRC/systemd/store-agent.service" "$SRC/config/store-example.yaml" "$SRC/scripts/board.sh"; do
    if [ ! -f "$file" ]; then
        echo "install.sh: $file is missing; run this script from a store-agent checkout" >&2
        exit 66
    fi
done

# shellcheck source=../scripts/board.sh
. "$SRC/scripts/board.sh"
board_plan
echo "install.sh: board $BOARD ($BOARD_ARCH): $BOARD_NOTE"
if [ -n "$BOARD_ERROR" ]; then
    echo "install.sh: $BOARD_ERROR" >&2
    exit 69
fi
PYTHON=${STORE_AGENT_PYTHON:-python3}
if [ "$DRY_RUN" -eq 0 ] && ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "install.sh: $PYTHON is not Python 3.10 or newer; the agent needs 3.10+" >&2
    exit 69
fi

if ! id store-agent >/dev/null 2>&1; then
    run useradd --system --home-dir /var/lib/store-agent --no-create-home --shell /usr/sbin/nologin store-agent
fi
for group in video audio dialout; do
    if getent group "$group" >/dev/null; then
        run usermod -a -G "$group" store-agent
    fi
done

# shellcheck disable=SC2086  # the board's lists are word lists
run apt-get install -y --no-install-recommends $BOARD_APT || echo "install.sh: apt could not install all of: $BOARD_APT" >&2
run install -d -m 0755 "$PREFIX"
# pi and jetson: --system-site-packages, so the venv sees apt's picamera2/libcamera (Pi) or JetPack's OpenCV (Jetson).
# shellcheck disable=SC2086
run "$PYTHON" -m venv $BOARD_VENV "$PREFIX/venv"
run "$PREFIX/venv/bin/pip" install --quiet --upgrade pip
# A plain (not editable) install: the example and demo configs ship inside the package (agent/examples).
# shellcheck disable=SC2086
run "$PREFIX/venv/bin/pip" install --quiet $BOARD_PIP "$SRC[$BOARD_EXTRAS]"
run install -d -m 0755 "$PREFIX/docs"
for doc in "$SRC"/docs/*.md; do
    [ -f "$doc" ] && run install -m 0644 "$doc" "$PREFIX/docs/"
done

run install -d -m 0750 -g store-agent "$CONF_DIR"
if [ -n "$CONFIG" ]; then
    run install -m 0640 -g store-agent "$CONFIG" "$CONF_DIR/store.yaml"
elif [ ! -f "$CONF_DIR/store.yaml" ]; then
    run install -m 0640 -g store-agent "$SRC/config/store-example.yaml" "$CONF_DIR/store.yaml"
    echo "install.sh: edit $CONF_DIR/store.yaml (store, terminal, mqtt, devices) before starting" >&2
fi
# The broker password is a systemd credential (LoadCredential=mqtt-password:...), readable by root only;
# set mqtt.password_credential: mqtt-password in the YAML to use it.
if [ ! -f "$CONF_DIR/mqtt-password" ]; then
    run install -m 0600 /dev/null "$CONF_DIR/mqtt-password"
fi
# The gallery key (AES-256-GCM of face templates at rest) and the card secret (HMAC of card UIDs) are made once,
# here, and never leave the terminal. Back them up offline: without the gallery key the gallery cannot be read,
# and a new card secret changes every card's hash (the member card registry must be rebuilt).
for secret in gallery-key card-secret; do
    if [ ! -f "$CONF_DIR/$secret" ]; then
        if [ "$DRY_RUN" -eq 1 ]; then
            echo "+ (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > $CONF_DIR/$secret)"
        else
            (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$CONF_DIR/$secret")
        fi
    fi
done

run install -m 0644 "$SRC/systemd/store-agent.service" "$UNIT"
if [ "$BOARD" = jetson ]; then
    # The Jetson GPU is reached through nvhost/nvgpu/nvmap nodes that differ between L4T releases: open device
    # access there (the video group still gates it); every other setting of the unit stays as it is.
    run install -d -m 0755 "$UNIT.d"
    run install -m 0644 "$SRC/systemd/jetson.conf" "$UNIT.d/jetson.conf"
fi
run systemctl daemon-reload
if ! run "$PREFIX/venv/bin/store-agent" check-config "$CONF_DIR/store.yaml"; then
    echo "install.sh: fix $CONF_DIR/store.yaml, then: systemctl enable --now store-agent" >&2
    exit 78
fi
run systemctl enable --now store-agent.service
# The self-check, as the service user with the service's credentials: Python, providers, models, devices, secrets,
# broker, clock, disk. A failure does not undo the install; it says what to fix (docs/systemd.md).
doctor_ok=1
run systemd-run --quiet --wait --pipe --collect -p User=store-agent -p Group=store-agent \
    -p SupplementaryGroups="video audio dialout" -p StateDirectory=store-agent \
    -p LoadCredential=mqtt-password:$CONF_DIR/mqtt-password -p LoadCredential=gallery-key:$CONF_DIR/gallery-key \
    -p LoadCredential=card-secret:$CONF_DIR/card-secret \
    "$PREFIX/venv/bin/store-agent" doctor --config "$CONF_DIR/store.yaml" || doctor_ok=0
if [ "$DRY_RUN" -eq 1 ]; then
    echo "install.sh: dry run; nothing was changed"
elif [ "$doctor_ok" -eq 1 ]; then
    echo "install.sh: store-agent enabled and doctor passed; journalctl -u store-agent -f to follow it"
else
    echo "install.sh: store-agent enabled, but doctor found problems (above); fix them, then: $PREFIX/venv/bin/store-agent doctor -c $CONF_DIR/store.yaml" >&2
    exit 1
fi
