#!/bin/bash
# `make run`: the lamp on this machine. On a Raspberry Pi it drives the real LED; elsewhere it
# simulates it and draws its colour in the terminal. If no MQTT broker listens on
# localhost:1883, a private Mosquitto is started there for as long as the lamp runs.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh mosquitto mosquitto-clients pkg-config libfontconfig-dev

if grep -qs "Raspberry Pi" /proc/device-tree/model; then
    scripts/deps.sh libudev-dev libinput-dev libxkbcommon-dev libdbus-1-dev
    features="--features rpi,linuxkms,ble,ble-client"; mode=""
else
    features=""; mode="--sim"
fi
# shellcheck disable=SC2086
cargo build --release $features

listening() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }
broker=""
if ! listening; then
    mkdir -p state
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_packet_size 131072\n%s' \
        "$( [ "$(id -u)" -eq 0 ] && echo 'user root' )" > state/mosquitto.conf
    mosquitto -c state/mosquitto.conf > state/mosquitto.log 2>&1 &
    broker=$!
    trap 'kill $broker 2>/dev/null' EXIT INT TERM
    # The lamp's first connection must find it listening (at most 5 s).
    for _ in $(seq 50); do
        listening && break
        kill -0 "$broker" 2>/dev/null || break
        sleep 0.1
    done
    if ! listening; then
        echo "the private Mosquitto is not listening on 127.0.0.1:1883; its log:" >&2
        cat state/mosquitto.log >&2
        exit 1
    fi
    echo "started a private Mosquitto on 127.0.0.1:1883 (log: state/mosquitto.log)"
fi
echo 'try: mosquitto_pub -t lamp/set_config -m '"'"'{"color":{"h":0.33,"s":1.0},"brightness":0.5,"on":true,"client":"me"}'"'"
# shellcheck disable=SC2086
./target/release/lampi --config config/lampi.toml run $mode --state-dir state
