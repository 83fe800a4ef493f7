#!/bin/sh
# Install store-agent as a systemd service on Debian / Ubuntu / Raspberry Pi OS. Run as root from a checkout:
#   sudo systemd/install.sh [path/to/store.yaml]
# Creates the store-agent user (groups video audio dialout), a venv in /opt/store-agent/venv, /etc/store-agent
# (config and mqtt-password credential), /var/lib/store-agent (state, via StateDirectory=), then enables the unit.
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/store-agent
CONF_DIR=/etc/store-agent
CONFIG=${1:-}

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo $0)" >&2
    exit 1
fi

if ! id store-agent >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/store-agent --no-create-home --shell /usr/sbin/nologin store-agent
fi
for group in video audio dialout; do
    getent group "$group" >/dev/null && usermod -a -G "$group" store-agent
done

apt-get install -y --no-install-recommends python3-venv libportaudio2 >/dev/null || true
install -d -m 0755 "$PREFIX"
# --system-site-packages lets a Raspberry Pi use apt's python3-picamera2 and libcamera bindings.
SITE=""
if [ -d /usr/lib/python3/dist-packages/picamera2 ]; then SITE="--system-site-packages"; fi
python3 -m venv $SITE "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet "$SRC"
install -d -m 0755 "$PREFIX/docs"
install -m 0644 "$SRC"/docs/*.md "$PREFIX/docs/" 2>/dev/null || true

install -d -m 0750 -g store-agent "$CONF_DIR"
if [ -n "$CONFIG" ]; then
    install -m 0640 -g store-agent "$CONFIG" "$CONF_DIR/store.yaml"
elif [ ! -f "$CONF_DIR/store.yaml" ]; then
    install -m 0640 -g store-agent "$SRC/config/store-example.yaml" "$CONF_DIR/store.yaml"
    echo "install.sh: edit $CONF_DIR/store.yaml (store, terminal, mqtt, devices) before starting" >&2
fi
# The broker password is a systemd credential (LoadCredential=mqtt-password:...), readable by root only;
# set mqtt.password_credential: mqtt-password in the YAML to use it.
if [ ! -f "$CONF_DIR/mqtt-password" ]; then
    install -m 0600 /dev/null "$CONF_DIR/mqtt-password"
fi

"$PREFIX/venv/bin/store-agent" check-config "$CONF_DIR/store.yaml" || {
    echo "install.sh: fix $CONF_DIR/store.yaml, then: systemctl enable --now store-agent" >&2
    install -m 0644 "$SRC/systemd/store-agent.service" /etc/systemd/system/store-agent.service
    systemctl daemon-reload
    exit 78
}
install -m 0644 "$SRC/systemd/store-agent.service" /etc/systemd/system/store-agent.service
systemctl daemon-reload
systemctl enable --now store-agent.service
echo "install.sh: store-agent enabled; journalctl -u store-agent -f to follow it"
