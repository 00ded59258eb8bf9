#!/usr/bin/env bash
# The broker's ceiling and Locust beside it, on one private loopback Mosquitto in one run:
#   1. lampi swarm raw --pattern firehose --max   (the broker's PUBLISH ceiling)
#   2. lampi swarm raw --pattern echo --rate R    (the swarm's shape without the lamp)
#   3. Locust + locust-plugins' MqttUser, the same echo shape (benches/locust/locustfile.py)
# For each: PUBLISH packets through the broker a second (in + out), the load generator's CPU
# seconds (its whole process tree, from /proc) and so messages per CPU-second, the broker's CPU,
# and the round trip's p50/p99. Benchmarks only, not CI (it makes a Python venv).
#
# Usage: benches/fleet-baselines.sh   (settings from the environment, defaults below)
#   DURATION=20            seconds each phase sends (every phase is bounded; ≤ 60 s asked)
#   FIRE_PUBLISHERS=4 FIRE_SUBSCRIBERS=1
#   ECHO_CLIENTS=1000 ECHO_APPS=10 ECHO_RATE=4000   set_config a second, all apps together;
#                          Locust runs ECHO_CLIENTS users at ECHO_RATE / ECHO_CLIENTS each
#   LOCUST_PROCESSES=2     Locust's --processes (0: one process)
#   LOCUST_SPAWN=100       users started a second: paho connects each at once, and past
#                          Mosquitto's listen backlog (100) connects wait for SYN retransmits
#   RAW_THREADS=1          lampi swarm raw --threads
#   SWARM_LAMPS=ECHO_CLIENTS SWARM_APPS=ECHO_APPS SWARM_RATE=1000 SWARM_MIX=desired=0,set_config=1
#                          the real lamps (`lampi swarm run`) in the echo's shape: each
#                          set_config goes through a whole lamp (its shadow, its events)
#   PHASES="firehose echo locust swarm"
#   LAMPI=…/release/lampi  built with `cargo build --release --features swarm,jemalloc` if missing
#   LOCUST_VENV=target/locust-venv   made with /usr/bin/python3 -m venv if missing
#   OUT=target/fleet       reports, Locust's CSVs and the Mosquitto config go here
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
FIRE_PUBLISHERS=${FIRE_PUBLISHERS:-4}
FIRE_SUBSCRIBERS=${FIRE_SUBSCRIBERS:-1}
ECHO_CLIENTS=${ECHO_CLIENTS:-1000}
ECHO_APPS=${ECHO_APPS:-10}
ECHO_RATE=${ECHO_RATE:-4000}
LOCUST_PROCESSES=${LOCUST_PROCESSES:-2}
LOCUST_SPAWN=${LOCUST_SPAWN:-100}
RAW_THREADS=${RAW_THREADS:-1}
SWARM_LAMPS=${SWARM_LAMPS:-$ECHO_CLIENTS}
SWARM_APPS=${SWARM_APPS:-$ECHO_APPS}
SWARM_RATE=${SWARM_RATE:-1000}
SWARM_MIX=${SWARM_MIX:-desired=0,set_config=1}
PHASES=${PHASES:-firehose echo locust swarm}
TARGET=${CARGO_TARGET_DIR:-target}
LAMPI=${LAMPI:-$TARGET/release/lampi}
LOCUST_VENV=${LOCUST_VENV:-target/locust-venv}
OUT=${OUT:-target/fleet}
mkdir -p "$OUT"
HZ=$(getconf CLK_TCK)
# calc EXPRESSION [DECIMALS]
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }

if [ ! -x "$LAMPI" ]; then
    cargo build --release --features swarm,jemalloc
fi
if ! "$LAMPI" swarm raw --help >/dev/null 2>&1; then
    echo "$LAMPI has no 'swarm raw': build it with --features swarm,jemalloc" >&2
    exit 1
fi
if [ ! -x "$LOCUST_VENV/bin/locust" ] && [[ " $PHASES " == *" locust "* ]]; then
    # Debian's python3 (python3-venv); a pyenv shim on PATH may be another Python.
    /usr/bin/python3 -m venv "$LOCUST_VENV"
    "$LOCUST_VENV/bin/pip" install --quiet -r benches/locust/requirements.txt
fi
PY=/usr/bin/python3
[ -x "$LOCUST_VENV/bin/python" ] && PY=$LOCUST_VENV/bin/python
if [[ " $PHASES " == *" locust "* ]]; then
    "$PY" -c "from locust_plugins.users.mqtt import MqttUser" \
        || { echo "locust-plugins' MqttUser does not import in $LOCUST_VENV" >&2; exit 1; }
fi

# Ticks of CPU (user + system) of a process; with "children", of its reaped children instead.
ticks() {
    local stat fields
    stat=$(cat "/proc/$1/stat")
    read -r -a fields <<<"${stat##*) }"
    # stat(5) fields 14–17 (utime, stime, cutime, cstime) are 11–14 after the name and state.
    if [ "${2:-}" = children ]; then
        echo $((fields[13] + fields[14]))
    else
        echo $((fields[11] + fields[12]))
    fi
}

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
conf=$OUT/mosquitto.conf
{
    echo "listener $port 127.0.0.1"
    echo "allow_anonymous true"
    echo "set_tcp_nodelay true"
    echo "max_queued_messages 0"
    echo "max_connections -1"
    echo "persistence false"
    echo "sys_interval 1"
    [ "$(id -u)" -eq 0 ] && echo "user root"
} >"$conf"
nofile=$(( (ECHO_CLIENTS + SWARM_LAMPS + ECHO_APPS + FIRE_PUBLISHERS + FIRE_SUBSCRIBERS) * 2 + 1024 ))
hard=$(ulimit -Hn)
if [ "$(id -u)" -ne 0 ] && [ "$hard" != unlimited ] && [ "$nofile" -gt "$hard" ]; then
    nofile=$hard
fi
prlimit --nofile="$nofile:$nofile" mosquitto -c "$conf" >"$OUT/mosquitto.log" 2>&1 &
broker=$!
group=""
cleanup() {
    [ -n "$group" ] && kill -KILL -- "-$group" 2>/dev/null || true
    kill "$broker" 2>/dev/null || true
    wait "$broker" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
    "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.1)" 2>/dev/null && break
    sleep 0.1
done
echo "Mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}') pid $broker on 127.0.0.1:$port (nofile $nofile; $conf)"

# measure NAME COMMAND…: runs the command in a bash whose reaped children's CPU (the command's
# whole process tree) it then reads from /proc, with the broker's CPU and the wall time.
declare -A GEN_S BROKER_S WALL_S
measure() {
    local name=$1
    shift
    local b0 t0 t1
    b0=$(ticks "$broker")
    t0=$(date +%s.%N)
    # setsid: the command leads its own process group, which cleanup() can end whole.
    setsid bash -c '"$@"; rc=$?; stat=$(cat /proc/$$/stat); read -r -a f <<<"${stat##*) }"; echo $((f[13] + f[14])) >"$CPU_FILE"; exit $rc' \
        _ "$@" &
    group=$!
    # Locust exits 1 when any request failed: still worth its figures.
    wait "$group" || echo "$name exited with status $?" >&2
    group=""
    t1=$(date +%s.%N)
    GEN_S[$name]=$(calc "$(cat "$CPU_FILE") / $HZ")
    BROKER_S[$name]=$(calc "($(ticks "$broker") - $b0) / $HZ")
    WALL_S[$name]=$(calc "$t1 - $t0")
}
export CPU_FILE=$OUT/.cpu

declare -A ROW
raw_row() { # NAME REPORT: broker msgs/s, app msgs/s, in+out, window, p50/p99 (ms)
    "$PY" - "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
b = r["baseline"]
w = b["window_ms"] / 1000
if b["pattern"] == "echo":
    app, lat = r["messages"]["set_config"]["received"] / w, r["latency_us"]["set_config_changed"]
else:
    app, lat = b["publish_out"] / w, r["latency_us"]["publish_puback"]
print(f'{(b["publish_in"] + b["publish_out"]) / w:.0f} {app:.0f} {b["publish_in"] + b["publish_out"]} {w:.1f} {lat["p50"] / 1000:.2f}/{lat["p99"] / 1000:.2f} {r["sources"][0]["cpu_s"]:.2f}')
EOF
}

for phase in $PHASES; do
    case $phase in
    firehose)
        echo "== raw firehose: $FIRE_PUBLISHERS publishers → $FIRE_SUBSCRIBERS subscribers, QoS 1, as fast as acknowledged, ${DURATION}s"
        measure firehose "$LAMPI" swarm raw --broker "127.0.0.1:$port" --pattern firehose \
            --connections "$FIRE_PUBLISHERS" --subscribers "$FIRE_SUBSCRIBERS" --max \
            --duration "${DURATION}s" --qos 1 --threads "$RAW_THREADS" --run-id fire --out "$OUT/raw-firehose.json"
        ROW[firehose]=$(raw_row firehose "$OUT/raw-firehose.json")
        ;;
    echo)
        echo "== raw echo: $ECHO_CLIENTS echo clients, $ECHO_APPS apps, $ECHO_RATE set_config/s, QoS 1, ${DURATION}s"
        measure echo "$LAMPI" swarm raw --broker "127.0.0.1:$port" --pattern echo \
            --connections "$ECHO_CLIENTS" --apps "$ECHO_APPS" --rate "$ECHO_RATE" \
            --duration "${DURATION}s" --qos 1 --threads "$RAW_THREADS" --run-id echo --out "$OUT/raw-echo.json"
        ROW[echo]=$(raw_row echo "$OUT/raw-echo.json")
        ;;
    locust)
        per_user=$(calc "$ECHO_RATE / $ECHO_CLIENTS" 6)
        processes=()
        [ "$LOCUST_PROCESSES" -gt 0 ] && processes=(--processes "$LOCUST_PROCESSES")
        echo "== Locust $("$LOCUST_VENV/bin/locust" --version 2>&1 | awk '{print $2}') + locust-plugins MqttUser: $ECHO_CLIENTS users × $per_user set_config/s, QoS 1, ${DURATION}s, ${processes[*]:-1 process}"
        rm -f "$OUT"/locust_*.csv
        export LAMPI_MQTT_PORT=$port LAMPI_LOCUST_RATE=$per_user LAMPI_LOCUST_PREFIX=locust
        measure locust "$LOCUST_VENV/bin/locust" -f benches/locust/locustfile.py --headless \
            --host 127.0.0.1 -u "$ECHO_CLIENTS" -r "$LOCUST_SPAWN" -t "${DURATION}s" "${processes[@]}" \
            --csv "$OUT/locust" --only-summary --loglevel WARNING >"$OUT/locust.log" 2>&1
        ROW[locust]=$("$PY" - "$OUT/locust_stats.csv" "$DURATION" <<'EOF'
import csv, sys
rows = {r["Name"]: r for r in csv.DictReader(open(sys.argv[1]))}
n = lambda name: int(rows.get(name, {}).get("Request Count", 0))
w = float(sys.argv[2])
# In: both publishes (counted at PUBACK); out: each set_config delivered (it was echoed) and
# each echo delivered.
total = n("publish:1:set_config") + 2 * n("publish:1:changed") + n("deliver")
d = rows.get("deliver", {})
print(f'{total / w:.0f} {n("deliver") / w:.0f} {total} {w:.1f} {d.get("50%", "-")}/{d.get("99%", "-")} {n("connect")}')
EOF
)
        ;;
    swarm)
        echo "== lampi swarm run: $SWARM_LAMPS real lamps, $SWARM_APPS apps, $SWARM_RATE/s ($SWARM_MIX), QoS 1, ${DURATION}s"
        # The lamps' own traffic (shadow documents, events, announcements) is counted by the
        # broker: its $SYS PUBLISH counters (sys_interval 1) before and after the phase.
        sys_count() {
            mosquitto_sub -p "$port" -t "\$SYS/broker/publish/messages/$1" -C 1 -W 5 2>/dev/null || echo 0
        }
        before=$(( $(sys_count received) + $(sys_count sent) ))
        mosquitto_sub -p "$port" -t '$SYS/broker/publish/messages/received' \
            -t '$SYS/broker/publish/messages/sent' -F '%U %t %p' >"$OUT/sys.log" 2>/dev/null &
        sys_watch=$!
        measure swarm "$LAMPI" swarm run --broker "127.0.0.1:$port" --lamps "$SWARM_LAMPS" \
            --apps "$SWARM_APPS" --rate "$SWARM_RATE" --mix "$SWARM_MIX" --duration "${DURATION}s" \
            --qos 1 --quiet --run-id swarm --out "$OUT/swarm.json" --svg "$OUT/swarm.svg"
        sleep 1.5 # one more $SYS interval
        total=$(( $(sys_count received) + $(sys_count sent) - before ))
        kill "$sys_watch" 2>/dev/null || true
        ROW[swarm]=$("$PY" - "$OUT/swarm.json" "$total" "${WALL_S[swarm]}" "$OUT/sys.log" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
total, wall = int(sys.argv[2]), float(sys.argv[3])
# The busiest 10 s by the broker's counters (each published once a second): in + out, and
# of those the PUBLISH it sent (deliveries to subscribers).
samples, last = [], {}
for line in open(sys.argv[4]):
    t, topic, value = line.split()
    last[topic.rsplit("/", 1)[1]] = int(value)
    if len(last) == 2:
        samples.append((float(t), last["received"] + last["sent"], last["sent"]))
spans = [(a, b) for a in samples for b in samples if 9.5 <= b[0] - a[0] <= 10.5]
a, b = max(spans, key=lambda s: (s[1][1] - s[0][1]) / (s[1][0] - s[0][0])) if spans else ((0, 0, 0), (1, 0, 0))
per_min = lambda i: (b[i] - a[i]) / (b[0] - a[0]) * 60
print(f'peak10s={per_min(1):.0f}/min (out {per_min(2):.0f}/min)', file=sys.stderr)
sent = sum(r["messages"][k]["sent"] for k in ("desired", "set_config"))
w = r["parameters"]["duration_ms"] / 1000
lat = r["latency_us"]["set_config_changed"]
print(f'{total / wall:.0f} {sent / w:.0f} {total} {wall:.1f} {lat["p50"] / 1000:.2f}/{lat["p99"] / 1000:.2f} lost={r["loss"]["lost"]}')
EOF
)
        ;;
    *)
        echo "unknown phase $phase" >&2
        exit 1
        ;;
    esac
done

echo
echo "Machine: $(nproc) CPUs, $(uname -r), $(lsb_release -ds 2>/dev/null || echo Linux); each phase ${DURATION} s of sending on 127.0.0.1:$port"
printf '%-10s %12s %12s %12s %10s %10s %14s %10s %14s\n' \
    generator "PUBLISH/s" "app msg/s" "msgs" "gen CPU s" "broker %" "msgs/gen CPU-s" "wall s" "p50/p99 ms"
for phase in $PHASES; do
    read -r broker_rate app_rate total window latency _connected <<<"${ROW[$phase]}"
    gen=${GEN_S[$phase]}
    per_cpu=$(calc "$total / $gen" 0)
    broker_pct=$(calc "100 * ${BROKER_S[$phase]} / ${WALL_S[$phase]}" 0)
    printf '%-10s %12s %12s %12s %10s %10s %14s %10s %14s\n' \
        "$phase" "$broker_rate" "$app_rate" "$total" "$gen" "$broker_pct" "$per_cpu" "${WALL_S[$phase]}" "$latency"
done
echo
echo "PUBLISH/s: packets through the broker (in + out) over the sending window; app msg/s: firehose"
echo "deliveries, echo round trips; gen CPU s: the load generator's whole process tree, connecting"
echo "included; broker %: Mosquitto's CPU over the phase's wall time (one core = 100);"
echo "p50/p99: firehose publish→PUBACK, echo/Locust/swarm set_config→changed (Locust rounds to 1 ms)."
echo "swarm: PUBLISH/s is the broker's own \$SYS count over the phase's wall time (ramp, final"
echo "gets and every lamp's traffic included); app msg/s the set_config sent a second; ${ROW[swarm]:+${ROW[swarm]##* }};"
echo "the busiest 10 s by \$SYS is printed above as peak10s (PUBLISH in + out a minute, and out alone)."
if [ -n "${ROW[locust]:-}" ]; then
    echo "Locust users connected (connect events): ${ROW[locust]##* } of $ECHO_CLIENTS; its rates are over all ${DURATION} s, ramp included"
fi
