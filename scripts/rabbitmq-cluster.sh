#!/bin/bash
# A three-node RabbitMQ cluster with the MQTT plugin on loopback, private to DIR: its own node
# names (lampi1..3@localhost), ports, Erlang cookie (in DIR, used as HOME) and epmd, so it never
# meets a system node or another test's cluster. Debian's rabbitmq-server 3.10 (`apt-get install
# rabbitmq-server`); no system node needs to run.
#
# Usage: scripts/rabbitmq-cluster.sh DIR start         start three new nodes and cluster them
#        scripts/rabbitmq-cluster.sh DIR stop-node I   stop node I (1..3) gracefully
#        scripts/rabbitmq-cluster.sh DIR kill-node I   SIGKILL node I
#        scripts/rabbitmq-cluster.sh DIR start-node I  start node I again (it rejoins)
#        scripts/rabbitmq-cluster.sh DIR ports         print the ports (as in DIR/ports.env)
#        scripts/rabbitmq-cluster.sh DIR down          kill every process of the cluster
#
# Ports come from BASE (environment, default 25600): epmd BASE, AMQP BASE+1..3, distribution
# BASE+11..13, MQTT BASE+21..23, the CLI's own distribution ports BASE+30..39; all on 127.0.0.1.
# QUEUE_TYPE=classic (environment, at start) keeps sessions in classic queues, RabbitMQ's default.
# `start` writes them to DIR/ports.env, which the other commands read. Every node runs in its
# own process group (its pid in DIR/nI/pgid), so `down` leaves no beam.smp, erl_child_setup or
# epmd behind even when the node hangs.
set -eu

[ $# -ge 2 ] || { sed -n '6,12p' "$0" >&2; exit 64; }
DIR=$(realpath "$1")
command=$2
RABBIT=/usr/lib/rabbitmq/bin
# Debian's /usr/sbin wrappers `su` to the rabbitmq user and its HOME, which would not read
# our cookie; the scripts they wrap do not.
[ -x "$RABBIT/rabbitmq-server" ] || { echo "rabbitmq-server is not installed (apt-get install rabbitmq-server)" >&2; exit 69; }
# Startup on a busy two-core machine takes tens of seconds; a hung node is still an error.
WAIT_SECS=${WAIT_SECS:-180}

ports() {
    if [ -f "$DIR/ports.env" ]; then
        . "$DIR/ports.env"
    else
        BASE=${BASE:-25600}
        EPMD=$BASE
    fi
}

# The environment every node and every CLI call of this cluster shares.
cluster_env() {
    export HOME="$DIR" ERL_EPMD_PORT="$EPMD" ERL_EPMD_ADDRESS=127.0.0.1
    # Ignore /etc/rabbitmq/rabbitmq-env.conf: nothing of the system node applies here.
    export RABBITMQ_CONF_ENV_FILE="$DIR/no-env.conf"
    export RABBITMQ_CTL_DIST_PORT_MIN=$((BASE + 30)) RABBITMQ_CTL_DIST_PORT_MAX=$((BASE + 39))
    export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
}

node_env() {
    i=$1
    export RABBITMQ_NODENAME="lampi$i@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$((BASE + i)) RABBITMQ_DIST_PORT=$((BASE + 10 + i))
    export RABBITMQ_MNESIA_BASE="$DIR/n$i/mnesia" RABBITMQ_LOG_BASE="$DIR/n$i/log"
    export RABBITMQ_CONFIG_FILE="$DIR/n$i/rabbitmq.conf" RABBITMQ_PLUGINS_EXPAND_DIR="$DIR/n$i/plugins"
    export RABBITMQ_PID_FILE="$DIR/n$i/beam.pid"
    # Three nodes share two cores with the tests: no scheduler busy-waiting.
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none"
}

ctl() {
    i=$1
    shift
    "$RABBIT/rabbitmqctl" -n "lampi$i@localhost" "$@"
}

write_config() {
    i=$1
    mkdir -p "$DIR/n$i"
    cat >"$DIR/n$i/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$((BASE + i))
mqtt.listeners.tcp.default = 127.0.0.1:$((BASE + 20 + i))
mqtt.allow_anonymous = true
mqtt.tcp_listen_options.nodelay = true
# Persistent sessions are quorum queues, replicated on all three nodes, so a lamp's session
# (and the QoS 1 requests waiting in it) survives the node it was on. Only for queues declared
# after it is set: it must be there before the first client connects.
mqtt.durable_queue_type = ${QUEUE_TYPE:-quorum}
# The default (10) throttles an app subscribed to many lamps.
mqtt.prefetch = 100
log.console = false
log.file.level = warning
disk_free_limit.absolute = 50MB
EOF
}

spawn_node() {
    i=$1
    (
        node_env "$i"
        rm -f "$RABBITMQ_PID_FILE"
        # setsid: a process group of its own (wrapper shell, beam.smp), to kill as one.
        setsid "$RABBIT/rabbitmq-server" >"$DIR/n$i/stdout.log" 2>&1 </dev/null &
        echo $! >"$DIR/n$i/pgid"
    )
}

await_node() {
    i=$1
    # `wait` waits for the pid file, then for the node to answer, then for it to be booted.
    if ! ctl "$i" wait --timeout "$WAIT_SECS" "$DIR/n$i/beam.pid" >/dev/null; then
        echo "node lampi$i did not start; its logs: $DIR/n$i/log, $DIR/n$i/stdout.log" >&2
        tail -20 "$DIR/n$i/stdout.log" >&2 || true
        exit 1
    fi
}

join() {
    ctl "$1" stop_app && ctl "$1" join_cluster lampi1@localhost && ctl "$1" start_app
}

kill_group() {
    file=$1
    if [ -f "$file" ]; then
        kill -KILL -- "-$(cat "$file")" 2>/dev/null || true
        rm -f "$file"
    fi
}

ports
cluster_env
case "$command" in
start)
    # Joining nodes that are already members fails: a cluster is started once, then per node.
    [ ! -e "$DIR/n1/mnesia" ] || { echo "$DIR holds a cluster already: start-node I, or remove it" >&2; exit 64; }
    mkdir -p "$DIR"
    printf 'BASE=%s\nEPMD=%s\nMQTT1=%s\nMQTT2=%s\nMQTT3=%s\n' "$BASE" "$EPMD" \
        $((BASE + 21)) $((BASE + 22)) $((BASE + 23)) >"$DIR/ports.env"
    # Erlang refuses a cookie file others can read.
    [ -f "$DIR/.erlang.cookie" ] || {
        od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/.erlang.cookie"
        chmod 400 "$DIR/.erlang.cookie"
    }
    echo '[rabbitmq_mqtt].' >"$DIR/enabled_plugins"
    # The cluster's own epmd, started here so that its pid is known and `down` can end it.
    (
        setsid epmd -port "$EPMD" -address 127.0.0.1 </dev/null >"$DIR/epmd.log" 2>&1 &
        echo $! >"$DIR/epmd.pgid"
    )
    # A node that finds no epmd listening starts one of its own, outside any group `down` ends.
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$EPMD") 2>/dev/null && break
        sleep 0.1
    done
    for i in 1 2 3; do write_config "$i"; done
    # All three boot at once (startup is the slow part); then 2 and 3 join 1.
    for i in 1 2 3; do spawn_node "$i"; done
    for i in 1 2 3; do await_node "$i"; done
    for i in 2 3; do
        # The output (with harmless errors about the tables of a node mid-join) goes to a log.
        join "$i" >>"$DIR/cli.log" 2>&1 || {
            echo "node lampi$i did not join lampi1:" >&2
            tail -20 "$DIR/cli.log" >&2
            exit 1
        }
    done
    ctl 1 await_startup --timeout "$WAIT_SECS" >/dev/null
    ;;
stop-node)
    ctl "$3" stop "$DIR/n$3/beam.pid" >/dev/null
    kill_group "$DIR/n$3/pgid"
    ;;
kill-node)
    kill_group "$DIR/n$3/pgid"
    ;;
start-node)
    spawn_node "$3"
    await_node "$3"
    ;;
ports)
    cat "$DIR/ports.env"
    ;;
down)
    for i in 1 2 3; do kill_group "$DIR/n$i/pgid"; done
    kill_group "$DIR/epmd.pgid"
    ;;
*)
    echo "unknown command: $command" >&2
    exit 64
    ;;
esac
