#!/bin/bash
# `lampi swarm run` on a three-node RabbitMQ cluster (scripts/rabbitmq-cluster.sh): lamps and
# apps spread over the nodes (each gets the three in a rotated order), node 2 stopped gracefully
# mid-run. Benchmarks only, not CI. The report's loss accounting says whether any acknowledged
# update was lost; its latency tail is the failover.
#
# Usage: benches/cluster-swarm.sh   (settings from the environment, defaults below)
#   LAMPS=300 APPS=6 RATE=100 DURATION=30 STOP_AT=15   (seconds; STOP_AT from the swarm's start)
#   LAMPI=target/release/lampi (built with --features swarm,jemalloc)   OUT=target/cluster-swarm
set -euo pipefail
cd "$(dirname "$0")/.."
LAMPS=${LAMPS:-300} APPS=${APPS:-6} RATE=${RATE:-100} DURATION=${DURATION:-30} STOP_AT=${STOP_AT:-15}
LAMPI=${LAMPI:-${CARGO_TARGET_DIR:-target}/release/lampi}
OUT=${OUT:-target/cluster-swarm}
mkdir -p "$OUT"
dir=$(mktemp -d)
swarm=""
trap '[ -n "$swarm" ] && kill "$swarm" 2>/dev/null; scripts/rabbitmq-cluster.sh "$dir" down; rm -rf "$dir"' EXIT
scripts/rabbitmq-cluster.sh "$dir" start
# shellcheck disable=SC1091
. "$dir/ports.env"
"$LAMPI" swarm run --broker "127.0.0.1:$MQTT1" --broker "127.0.0.1:$MQTT2" --broker "127.0.0.1:$MQTT3" \
    --lamps "$LAMPS" --apps "$APPS" --rate "$RATE" --ramp 100 --duration "${DURATION}s" --grace 10s \
    --quiet --run-id cluster --out "$OUT/report.json" --svg "$OUT/report.svg" &
swarm=$!
sleep "$STOP_AT"
echo "stopping node 2 at $(date -u +%T.%N)"
scripts/rabbitmq-cluster.sh "$dir" stop-node 2
wait "$swarm"
