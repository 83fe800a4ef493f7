#!/bin/sh
# Install store-agent as a systemd service on Debian / Ubuntu / Raspberry Pi OS. Run as root from a checkout:
#   sudo systemd/install.sh [--dry-run] [path/to/store.yaml]
# Creates the store-agent user (groups video audio dialout), a venv in /opt/store-agent/venv, /etc/store-agent
# (config and mqtt-password credential), /var/lib/store-agent (state, via StateDirectory=), then enables the unit.
# --dry-run (any user; or STORE_AGENT_DRY_RUN=1) prints every command that would change the system, prefixed with "+ ", and changes nothing.
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
for file in "$SRC/pyproject.toml" "$SRC/systemd/store-agent.service" "$SRC/config/store-example.yaml"; do
    if [ ! -f "$file" ]; then
        echo "install.sh: $file is missing; run this script from a store-agent checkout" >&2
        exit 66
    fi
done

if ! id store-agent >/dev/null 2>&1; then
    run useradd --system --home-dir /var/lib/store-agent --no-create-home --shell /usr/sbin/nologin store-agent
fi
for group in video audio dialout; do
    if getent group "$group" >/dev/null; then
        run usermod -a -G "$group" store-agent
    fi
done

run apt-get install -y --no-install-recommends python3-venv libportaudio2 || true
run install -d -m 0755 "$PREFIX"
# --system-site-packages lets a Raspberry Pi use apt's python3-picamera2 and libcamera bindings.
if [ -d /usr/lib/python3/dist-packages/picamera2 ]; then
    run python3 -m venv --system-site-packages "$PREFIX/venv"
else
    run python3 -m venv "$PREFIX/venv"
fi
run "$PREFIX/venv/bin/pip" install --quiet --upgrade pip
run "$PREFIX/venv/bin/pip" install --quiet "$SRC"
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
run systemctl daemon-reload
if ! run "$PREFIX/venv/bin/store-agent" check-config "$CONF_DIR/store.yaml"; then
    echo "install.sh: fix $CONF_DIR/store.yaml, then: systemctl enable --now store-agent" >&2
    exit 78
fi
run systemctl enable --now store-agent.service
if [ "$DRY_RUN" -eq 1 ]; then
    echo "install.sh: dry run; nothing was changed"
else
    echo "install.sh: store-agent enabled; journalctl -u store-agent -f to follow it"
fi
