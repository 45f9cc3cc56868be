#!/usr/bin/env bash
# Apache Kafka reference broker for compatibility tests and benchmarks.
#
# Gets Apache Kafka (org.apache.kafka:kafka_2.13 + kafka-tools) from Maven Central through
# Maven into a cache, and runs a single-node KRaft broker+controller from those jars.
#
# Usage:
#   scripts/kafka-reference.sh fetch                 resolve the jars (cached; prints libs dir)
#   scripts/kafka-reference.sh classpath             print the classpath
#   scripts/kafka-reference.sh start [port]          fresh data dir, format, start, wait; prints pid
#   scripts/kafka-reference.sh restart [port]        stop and start again over the same data
#   scripts/kafka-reference.sh stop [port]           stop it (SIGTERM, then SIGKILL) and delete its data
#   scripts/kafka-reference.sh status [port]         "running <pid>" or "stopped" (exit 1)
#   scripts/kafka-reference.sh logfile [port]        path of the broker's log file
#   scripts/kafka-reference.sh start-cluster [base]  three-node KRaft cluster (every node broker+controller,
#                                                    node ids 1-3, clients on base..base+2, default 39092,
#                                                    controllers on base+100..base+102), fresh data, one
#                                                    cluster id formatted into all three, wait until all
#                                                    three brokers are registered; prints the bootstrap list
#   scripts/kafka-reference.sh stop-cluster [base]   stop its three nodes (SIGTERM, then SIGKILL), delete data
#   scripts/kafka-reference.sh cluster-status [base] "running <pid> <pid> <pid>" or "stopped" (exit 1)
#   scripts/kafka-reference.sh run-tool <MainClass> [args...]
#       e.g. run-tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:19092 --list
#       Tool classes in 4.x: org.apache.kafka.tools.{TopicCommand,ConsoleProducer,
#       consumer.ConsoleConsumer,ProducerPerformance,ConsumerPerformance,EndToEndLatency,
#       GetOffsetShell,consumer.group.ConsumerGroupCommand}, kafka.admin.ConfigCommand,
#       kafka.tools.StorageTool.
#
# Environment:
#   KAFKA_VERSION            Kafka version to resolve (default 4.1.1)
#   KAFKA_REF_CACHE          cache root (default $HOME/.cache/kafka-broker-compat)
#   KAFKA_REF_STATE_DIR      where running brokers keep pid/config/data (default /tmp/kafka-reference-$UID)
#   KAFKA_REF_CONTROLLER_PORT  controller listener port (default: broker port + 1)
#   KAFKA_REF_LOG            broker log file (default <state>/<port>/kafka.log)
#   KAFKA_REF_EXTRA_PROPS    extra server.properties lines (newline separated), e.g. flush.messages=1
#   KAFKA_HEAP_OPTS          JVM heap (default "-Xms1G -Xmx1G"; for each of the three
#                            start-cluster nodes the default is "-Xms512m -Xmx512m")
#   KAFKA_REF_START_TIMEOUT  seconds to wait for the broker to answer (default 90; the cluster: 180)
#   KAFKA_REF_CLUSTER_LOG_DIR  where start-cluster writes node<i>.log (default <state>/cluster-<base>;
#                            a directory given here is kept by stop-cluster)
#
# The cluster's server.properties: offsets.topic.replication.factor=3,
# transaction.state.log.replication.factor=3 (min.isr 2), group.initial.rebalance.delay.ms=0,
# default.replication.factor=1 and min.insync.replicas left at Kafka's default (1): set them
# per topic. KAFKA_REF_EXTRA_PROPS is appended to every node's file.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
REF_DIR="$REPO_DIR/compat-tests/kafka-reference"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
CACHE_ROOT="${KAFKA_REF_CACHE:-$HOME/.cache/kafka-broker-compat}"
KAFKA_HOME="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS_DIR="$KAFKA_HOME/libs"
STATE_ROOT="${KAFKA_REF_STATE_DIR:-${TMPDIR:-/tmp}/kafka-reference-$(id -u)}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms1G -Xmx1G}"
CLUSTER_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
START_TIMEOUT="${KAFKA_REF_START_TIMEOUT:-90}"
CLUSTER_START_TIMEOUT="${KAFKA_REF_START_TIMEOUT:-180}"
DEFAULT_PORT=19092
DEFAULT_CLUSTER_PORT=39092
CLUSTER_NODES=3

log() { echo "kafka-reference: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- fetching the jars

fetch() {
    if [[ -f "$LIBS_DIR/.complete" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
    command -v java >/dev/null || die "java not found (apt-get install -y openjdk-17-jre-headless)"
    log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION and kafka-tools from Maven Central"
    mkdir -p "$KAFKA_HOME"
    local tmp
    tmp="$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")"
    if ! mvn -B -q -Dstyle.color=never -f "$REF_DIR/pom.xml" \
            -Dkafka.version="$KAFKA_VERSION" \
            -DincludeScope=runtime \
            -DoutputDirectory="$tmp" \
            dependency:copy-dependencies >&2; then
        rm -rf "$tmp"
        die "maven could not resolve Kafka $KAFKA_VERSION"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after resolve"; }
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    echo "$KAFKA_VERSION" > "$LIBS_DIR/.complete"
    log "jars in $LIBS_DIR ($(ls "$LIBS_DIR" | wc -l) files)"
}

classpath() { echo "$LIBS_DIR/*"; }

# ---------------------------------------------------------------- broker state

port_arg() {
    local p="${1:-$DEFAULT_PORT}"
    [[ "$p" =~ ^[0-9]+$ ]] || die "bad port: $p"
    echo "$p"
}

state_dir() { echo "$STATE_ROOT/$1"; }

pid_of() {
    local f
    f="$(state_dir "$1")/pid"
    [[ -f "$f" ]] || return 1
    local pid
    pid="$(cat "$f")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

logfile_of() {
    local sd
    sd="$(state_dir "$1")"
    if [[ -f "$sd/logfile" ]]; then cat "$sd/logfile"; else echo "${KAFKA_REF_LOG:-$sd/kafka.log}"; fi
}

port_in_use() {
    # bash's /dev/tcp: succeeds when something accepts connections on the port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_properties() {
    local port="$1" cport="$2" data="$3" file="$4"
    cat > "$file" <<EOF
# generated by scripts/kafka-reference.sh
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/logs
metadata.log.dir=$data/metadata
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
EOF
    if [[ -n "${KAFKA_REF_EXTRA_PROPS:-}" ]]; then
        printf '%s\n' "$KAFKA_REF_EXTRA_PROPS" >> "$file"
    fi
}

java_cmd() {
    # java_cmd [heap options]: the broker's java command line (heap: $HEAP_OPTS)
    # shellcheck disable=SC2086
    echo java ${1:-$HEAP_OPTS} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
}

wait_ready() {
    local port="$1" pid="$2" logf="$3"
    local deadline=$((SECONDS + START_TIMEOUT))
    while (( SECONDS < deadline )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "broker exited during startup; last lines of $logf:"
            tail -n 30 "$logf" >&2 || true
            return 1
        fi
        if port_in_use "$port"; then
            if command -v kcat >/dev/null; then
                if kcat -L -b "127.0.0.1:$port" -m 3 2>/dev/null | grep -q "broker 1 at 127.0.0.1:$port"; then
                    return 0
                fi
            elif grep -q "Kafka Server started" "$logf" 2>/dev/null; then
                return 0
            fi
        fi
        sleep 0.5
    done
    log "broker did not answer on 127.0.0.1:$port within ${START_TIMEOUT}s; see $logf"
    return 1
}

launch() {
    # launch <port>: start the broker over the data dir recorded in the state dir
    local port="$1"
    local sd logf pid
    sd="$(state_dir "$port")"
    logf="$(logfile_of "$port")"
    mkdir -p "$(dirname "$logf")"
    echo "$logf" > "$sd/logfile"
    {
        echo "===== $(date -Is) starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$port"
    } >> "$logf"
    # setsid: own session, so the broker outlives the calling shell and signals to the
    # caller's process group do not reach it; we stop it by pid.
    # shellcheck disable=SC2046
    setsid $(java_cmd) \
        -Dlog4j2.configurationFile="$REF_DIR/log4j2.properties" \
        -Dkafka.logs.dir="$sd" \
        -cp "$(classpath)" kafka.Kafka "$sd/server.properties" \
        >> "$logf" 2>&1 < /dev/null &
    pid=$!
    echo "$pid" > "$sd/pid"
    if ! wait_ready "$port" "$pid" "$logf"; then
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$sd/pid"
        return 1
    fi
    echo "$pid"
}

start() {
    local port cport sd data cluster_id
    port="$(port_arg "${1:-}")"
    cport="${KAFKA_REF_CONTROLLER_PORT:-$((port + 1))}"
    fetch
    if pid_of "$port" >/dev/null; then
        log "already running on port $port"
        pid_of "$port"
        return 0
    fi
    port_in_use "$port" && die "port $port is already in use by another process"
    port_in_use "$cport" && die "controller port $cport is already in use by another process"
    sd="$(state_dir "$port")"
    # a stale state dir (broker died, machine rebooted): drop its data
    if [[ -f "$sd/datadir" ]]; then rm -rf "$(cat "$sd/datadir")"; fi
    rm -rf "$sd"
    mkdir -p "$sd"
    data="$(mktemp -d "${TMPDIR:-/tmp}/kafka-reference-data-$port.XXXXXX")"
    echo "$data" > "$sd/datadir"
    echo "$cport" > "$sd/controller_port"
    write_properties "$port" "$cport" "$data" "$sd/server.properties"
    rm -f "$sd/logfile"
    local logf
    logf="$(logfile_of "$port")"
    mkdir -p "$(dirname "$logf")"
    : > "$logf"
    # Kafka cluster ids are 16 random bytes in unpadded URL-safe base64 (22 chars).
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    echo "$cluster_id" > "$sd/cluster_id"
    # shellcheck disable=SC2046
    if ! java -Xmx256m -Dlog4j2.configurationFile="$REF_DIR/tools-log4j2.properties" \
            -cp "$(classpath)" kafka.tools.StorageTool format \
            --cluster-id="$cluster_id" -c "$sd/server.properties" >> "$logf" 2>&1; then
        tail -n 20 "$logf" >&2
        die "kafka.tools.StorageTool format failed"
    fi
    launch "$port"
}

stop_pid() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || return 0

    for _ in $(seq 1 120); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    log "pid $pid did not stop within 30s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
}

stop() {
    local port sd pid
    port="$(port_arg "${1:-}")"
    sd="$(state_dir "$port")"
    if pid="$(pid_of "$port")"; then
        stop_pid "$pid"
        log "stopped pid $pid (port $port)"
    else
        log "not running on port $port"
    fi
    if [[ -f "$sd/datadir" ]]; then rm -rf "$(cat "$sd/datadir")"; fi
    rm -rf "$sd"
}

restart() {
    local port sd pid
    port="$(port_arg "${1:-}")"
    sd="$(state_dir "$port")"
    [[ -f "$sd/server.properties" ]] || die "no broker was started on port $port (use start)"
    fetch
    if pid="$(pid_of "$port")"; then
        stop_pid "$pid"
        log "stopped pid $pid (port $port), starting again over $(cat "$sd/datadir")"
    fi
    rm -f "$sd/pid"
    launch "$port"
}

status() {
    local port pid
    port="$(port_arg "${1:-}")"
    if pid="$(pid_of "$port")"; then echo "running $pid"; else echo "stopped"; return 1; fi
}

# ---------------------------------------------------------------- three-node cluster

cluster_dir() { echo "$STATE_ROOT/cluster-$1"; }

cluster_pids() {
    # cluster_pids <base>: the live node pids, space separated; fails when none is alive
    local sd pids="" i pid
    sd="$(cluster_dir "$1")"
    for i in $(seq 1 "$CLUSTER_NODES"); do
        [[ -f "$sd/node$i.pid" ]] || continue
        pid="$(cat "$sd/node$i.pid")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then pids+="${pids:+ }$pid"; fi
    done
    [[ -n "$pids" ]] || return 1
    echo "$pids"
}

cluster_bootstrap() {
    local base="$1" i out=""
    for i in $(seq 1 "$CLUSTER_NODES"); do out+="${out:+,}127.0.0.1:$((base + i - 1))"; done
    echo "$out"
}

write_cluster_properties() {
    local id="$1" port="$2" cport="$3" voters="$4" data="$5" file="$6"
    cat > "$file" <<EOF
# generated by scripts/kafka-reference.sh start-cluster
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/logs
metadata.log.dir=$data/metadata
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
EOF
    if [[ -n "${KAFKA_REF_EXTRA_PROPS:-}" ]]; then
        printf '%s\n' "$KAFKA_REF_EXTRA_PROPS" >> "$file"
    fi
}

cluster_ready() {
    # cluster_ready <base> <logdir>: every node's client port lists all the cluster's brokers
    local base="$1" logdir="$2" i port
    for i in $(seq 1 "$CLUSTER_NODES"); do
        port=$((base + i - 1))
        port_in_use "$port" || return 1
        if command -v kcat >/dev/null; then
            kcat -L -b "127.0.0.1:$port" -m 3 2>/dev/null | grep -q "^ *$CLUSTER_NODES brokers:" || return 1
        else
            grep -q "Kafka Server started" "$logdir/node$i.log" 2>/dev/null || return 1
        fi
    done
}

stop_pids() {
    # stop_pids <pid>...: SIGTERM all at once (a combined node's controlled shutdown needs the
    # controller quorum, so they go down together), SIGKILL what is left after 30s
    local pid alive
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 120); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || return 0
        sleep 0.25
    done
    for pid in "$@"; do
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid did not stop within 30s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for _ in $(seq 1 40); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || return 0
        sleep 0.25
    done
}

stop_cluster() {
    local base sd pids
    base="$(port_arg "${1:-$DEFAULT_CLUSTER_PORT}")"
    sd="$(cluster_dir "$base")"
    if pids="$(cluster_pids "$base")"; then
        # shellcheck disable=SC2086
        stop_pids $pids
        log "stopped cluster on $(cluster_bootstrap "$base") (pids $pids)"
    else
        log "no cluster running on base port $base"
    fi
    if [[ -f "$sd/datadir" ]]; then rm -rf "$(cat "$sd/datadir")"; fi
    rm -rf "$sd"
}

start_cluster() {
    local base sd data logdir cluster_id voters i port cport pid logf pids=()
    base="$(port_arg "${1:-$DEFAULT_CLUSTER_PORT}")"
    fetch
    if cluster_pids "$base" >/dev/null; then
        log "cluster already running on base port $base (pids $(cluster_pids "$base"))"
        cluster_bootstrap "$base"
        return 0
    fi
    voters=""
    for i in $(seq 1 "$CLUSTER_NODES"); do
        port=$((base + i - 1))
        cport=$((base + 100 + i - 1))
        port_in_use "$port" && die "port $port is already in use by another process"
        port_in_use "$cport" && die "controller port $cport is already in use by another process"
        voters+="${voters:+,}$i@127.0.0.1:$cport"
    done
    sd="$(cluster_dir "$base")"
    # a stale state dir (cluster died, machine rebooted): drop its data
    if [[ -f "$sd/datadir" ]]; then rm -rf "$(cat "$sd/datadir")"; fi
    rm -rf "$sd"
    mkdir -p "$sd"
    logdir="${KAFKA_REF_CLUSTER_LOG_DIR:-$sd}"
    mkdir -p "$logdir"
    echo "$logdir" > "$sd/logdir"
    data="$(mktemp -d "${TMPDIR:-/tmp}/kafka-reference-cluster-data-$base.XXXXXX")"
    echo "$data" > "$sd/datadir"
    echo "$CLUSTER_HEAP_OPTS" > "$sd/heap"
    # one cluster id (16 random bytes, unpadded URL-safe base64) formatted into every node:
    # a static quorum (controller.quorum.voters), so no --standalone / --initial-controllers
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    echo "$cluster_id" > "$sd/cluster_id"
    for i in $(seq 1 "$CLUSTER_NODES"); do
        port=$((base + i - 1))
        cport=$((base + 100 + i - 1))
        mkdir -p "$data/node$i"
        write_cluster_properties "$i" "$port" "$cport" "$voters" "$data/node$i" "$sd/node$i.properties"
        logf="$logdir/node$i.log"
        : > "$logf"
        if ! java -Xmx256m -Dlog4j2.configurationFile="$REF_DIR/tools-log4j2.properties" \
                -cp "$(classpath)" kafka.tools.StorageTool format \
                --cluster-id "$cluster_id" --config "$sd/node$i.properties" >> "$logf" 2>&1; then
            tail -n 20 "$logf" >&2
            rm -rf "$data" "$sd"
            die "kafka.tools.StorageTool format failed for node $i"
        fi
    done
    for i in $(seq 1 "$CLUSTER_NODES"); do
        logf="$logdir/node$i.log"
        echo "===== $(date -Is) starting Apache Kafka $KAFKA_VERSION node $i on 127.0.0.1:$((base + i - 1)) ($CLUSTER_HEAP_OPTS)" >> "$logf"
        mkdir -p "$sd/node$i"
        # setsid: own session, as for the single broker; stopped by pid
        # shellcheck disable=SC2046
        setsid $(java_cmd "$CLUSTER_HEAP_OPTS") \
            -Dlog4j2.configurationFile="$REF_DIR/log4j2.properties" \
            -Dkafka.logs.dir="$sd/node$i" \
            -cp "$(classpath)" kafka.Kafka "$sd/node$i.properties" \
            >> "$logf" 2>&1 < /dev/null &
        pid=$!
        echo "$pid" > "$sd/node$i.pid"
        pids+=("$pid")
    done
    local deadline=$((SECONDS + CLUSTER_START_TIMEOUT))
    while ! cluster_ready "$base" "$logdir"; do
        for i in $(seq 1 "$CLUSTER_NODES"); do
            if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
                log "node $i exited during startup; last lines of $logdir/node$i.log:"
                tail -n 30 "$logdir/node$i.log" >&2 || true
                stop_cluster "$base"
                return 1
            fi
        done
        if (( SECONDS >= deadline )); then
            log "the cluster did not come up within ${CLUSTER_START_TIMEOUT}s; see $logdir/node*.log"
            stop_cluster "$base"
            return 1
        fi
        sleep 0.5
    done
    log "started Apache Kafka $KAFKA_VERSION 3-node KRaft cluster $cluster_id on $(cluster_bootstrap "$base"), controllers $voters, heap $CLUSTER_HEAP_OPTS per node, pids ${pids[*]}, data $data, logs $logdir"
    cluster_bootstrap "$base"
}

cluster_status() {
    local base pids
    base="$(port_arg "${1:-$DEFAULT_CLUSTER_PORT}")"
    if pids="$(cluster_pids "$base")"; then echo "running $pids"; else echo "stopped"; return 1; fi
}

run_tool() {
    [[ $# -ge 1 ]] || die "run-tool needs a main class"
    fetch
    local cls="$1"
    shift
    exec java -Xmx512m -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$REF_DIR/tools-log4j2.properties" \
        -cp "$(classpath)" "$cls" "$@"
}

usage() { sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    fetch) fetch; echo "$LIBS_DIR" ;;
    classpath) fetch; classpath ;;
    start) start "$@" ;;
    restart) restart "$@" ;;
    stop) stop "$@" ;;
    status) status "$@" ;;
    logfile) logfile_of "$(port_arg "${1:-}")" ;;
    start-cluster) start_cluster "$@" ;;
    stop-cluster) stop_cluster "$@" ;;
    cluster-status) cluster_status "$@" ;;
    run-tool) run_tool "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
