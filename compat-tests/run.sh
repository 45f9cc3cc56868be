#!/usr/bin/env bash
# Client compatibility suite: real Kafka clients against this broker (and, with --reference,
# against Apache Kafka side by side). Writes compat-tests/MATRIX.md.
#
# Usage: compat-tests/run.sh [--reference | --reference-only] [--no-build] [--clients LIST]
#                           [--scenarios LIST] [--cluster]
#   --reference       also run every scenario against Apache Kafka (scripts/kafka-reference.sh)
#   --reference-only  only against Apache Kafka (checks the scenarios themselves; no cargo build)
#   --no-build        use the existing target/release/broker
#   --clients LIST    comma-separated subset of: kcat,confluent,franz-go,sarama,kafka-go,
#                     java,kafka-cli,kafkajs,kafka-python
#                     (default: all)
#   --no-franz-go-suite  skip franz-go's own kgo tests (compat-tests/franz-go-suite), which
#                     otherwise run after the scenarios whenever franz-go is a client
#   --scenarios LIST  comma-separated subset of: basic,groups,txn (default: all; txn =
#                     transactions: confluent, java, kafka-cli)
#   --cluster         run this broker as a three-node Raft cluster, replication factor 3 and
#                     min.insync.replicas 2 by default (free ports, configs in the
#                     run's temp dir, bootstrap = all three) instead of one node; restart =
#                     all three; the scenarios create their topics with replication factor 3
#                     (COMPAT_REPLICATION_FACTOR=3); writes compat-tests/MATRIX-cluster.md,
#                     logs .logs-cluster/
#
# For each broker: every client runs `produce`, then `verify` of each scenario; the broker is
# restarted (SIGTERM, start again over the same data dir); every client runs `verify` again
# (`restart-verify`), then `cleanup`. Logs go to compat-tests/.logs/. Exits non-zero if any
# check failed against this broker (or, with --reference-only, against Apache Kafka).
#
# Environment: BROKER_BIN (default target/release/broker), KAFKA_VERSION (reference version),
# PHASE_TIMEOUT (seconds per scenario phase, default 180). The scenarios (and the franz-go
# suite, as KGO_TEST_RF) get COMPAT_REPLICATION_FACTOR, the replication factor of the topics
# they create: 3 against the --cluster target, 1 against a single node or Apache Kafka.
set -euo pipefail

COMPAT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$COMPAT/.." && pwd)"
LOGS="$COMPAT/.logs"
VENV="$COMPAT/.venv"
REF_SCRIPT="$REPO/scripts/kafka-reference.sh"
BROKER_BIN="${BROKER_BIN:-$REPO/target/release/broker}"
PHASE_TIMEOUT="${PHASE_TIMEOUT:-180}"
ALL_CLIENTS=(kcat confluent franz-go sarama kafka-go java kafka-cli kafkajs kafka-python)
ALL_SCENARIOS=(basic groups txn)
# --cluster: the nodes' default_replication_factor / min_insync_replicas, and the replication
# factor the scenarios give their topics (COMPAT_REPLICATION_FACTOR) against the cluster
CLUSTER_RF=3
CLUSTER_MIN_ISR=2

RUN_OURS=1
RUN_REF=0
CLUSTER=0
BUILD=1
FRANZ_SUITE=1
CLIENTS=("${ALL_CLIENTS[@]}")
SCENARIOS=("${ALL_SCENARIOS[@]}")
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reference) RUN_REF=1 ;;
        --reference-only) RUN_REF=1; RUN_OURS=0; BUILD=0 ;;
        --no-build) BUILD=0 ;;
        --cluster) CLUSTER=1 ;;
        --no-franz-go-suite) FRANZ_SUITE=0 ;;
        --clients) shift; IFS=, read -r -a CLIENTS <<< "${1:-}" ;;
        --scenarios) shift; IFS=, read -r -a SCENARIOS <<< "${1:-}" ;;
        -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
for c in "${CLIENTS[@]}"; do
    [[ " ${ALL_CLIENTS[*]} " == *" $c "* ]] || { echo "unknown client: $c" >&2; exit 2; }
done
for s in "${SCENARIOS[@]}"; do
    [[ " ${ALL_SCENARIOS[*]} " == *" $s "* ]] || { echo "unknown scenario: $s" >&2; exit 2; }
done

# OURS_T: this broker's target name in results.tsv (ours, or cluster with --cluster)
OURS_T=ours
MATRIX_OUT="$COMPAT/MATRIX.md"
if [[ $CLUSTER -eq 1 ]]; then
    [[ $RUN_OURS -eq 1 ]] || { echo "--cluster does not go with --reference-only" >&2; exit 2; }
    OURS_T=cluster
    LOGS="$COMPAT/.logs-cluster"
    MATRIX_OUT="$COMPAT/MATRIX-cluster.md"
fi
# the replication factor of the topics the scenarios create (run_target sets it per target:
# the cluster's CLUSTER_RF, 1 for a single node and for Apache Kafka, which is one node)
if [[ $CLUSTER -eq 1 ]]; then export COMPAT_REPLICATION_FACTOR=$CLUSTER_RF; else export COMPAT_REPLICATION_FACTOR=1; fi

mkdir -p "$LOGS"
RUN_TMP="$(mktemp -d "${TMPDIR:-/tmp}/compat-run.XXXXXX")"
RESULTS="$LOGS/results.tsv"
rm -rf "$LOGS/state"
EVENTS="$RUN_TMP/events.jsonl"
: > "$RESULTS"
: > "$EVENTS"

say() { echo "== $*" >&2; }

# ------------------------------------------------------------------------ cleanup on exit

OURS_PID=""
OURS_BIN=""
OURS_PORT=""
OURS_CFG=""
OURS_DATA=""
REF_PORT=""
CLUSTER_PIDS=()   # --cluster: one PID per node ("" when not running)
cleanup() {
    local rc=$?
    local cpid
    for cpid in "${CLUSTER_PIDS[@]}"; do
        if [[ -n "$cpid" ]]; then kill -TERM -- "-$cpid" 2>/dev/null || true; fi
    done
    for cpid in "${CLUSTER_PIDS[@]}"; do
        [[ -n "$cpid" ]] || continue
        for _ in $(seq 1 40); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL -- "-$cpid" 2>/dev/null || true
    done
    if [[ -n "$OURS_PID" ]] && kill -0 "$OURS_PID" 2>/dev/null; then
        kill -TERM -- "-$OURS_PID" 2>/dev/null || kill -TERM "$OURS_PID" 2>/dev/null || true
        sleep 1
        kill -KILL -- "-$OURS_PID" 2>/dev/null || kill -KILL "$OURS_PID" 2>/dev/null || true
    fi
    if [[ -n "$REF_PORT" ]]; then
        "$REF_SCRIPT" stop "$REF_PORT" >/dev/null 2>&1 || true
    fi
    rm -rf "$RUN_TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

event() {  # event TARGET TEXT
    "$PYTHON3" -c 'import json,sys; print(json.dumps({"target": sys.argv[1], "text": sys.argv[2]}))' \
        "$1" "$2" >> "$EVENTS"
    say "$1: $2"
}

# ------------------------------------------------------------------------ installs

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 \
        || { as_root apt-get update -q >&2 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; }
}

PYTHON3="$(command -v python3 || true)"
[[ -n "$PYTHON3" ]] || { apt_install python3 python3-venv; PYTHON3="$(command -v python3)"; }

if [[ " ${CLIENTS[*]} " == *" kcat "* ]] && ! command -v kcat >/dev/null; then
    say "installing kcat (apt)"
    apt_install kcat
fi

# the venv serves the confluent scenario and the kcat scenario's topic admin
REQ="$COMPAT/python/requirements.txt"
REQ_SUM="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$REQ_SUM" ]]; then
    say "creating $VENV and installing $(tr '\n' ' ' < "$REQ")"
    "$PYTHON3" -m venv "$VENV" || { apt_install python3-venv; "$PYTHON3" -m venv --clear "$VENV"; }
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" >&2
    echo "$REQ_SUM" > "$VENV/.requirements.sha256"
fi

# kafka-python and its codec packages go into the same venv (no conflicts with confluent-kafka)
REQ_KPY="$COMPAT/python/requirements-kafka-python.txt"
if [[ " ${CLIENTS[*]} " == *" kafka-python "* ]]; then
    KPY_SUM="$(sha256sum "$REQ_KPY" | cut -d' ' -f1)"
    if [[ "$(cat "$VENV/.requirements-kafka-python.sha256" 2>/dev/null)" != "$KPY_SUM" ]]; then
        say "installing $(tr '\n' ' ' < "$REQ_KPY") into $VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ_KPY" >&2
        echo "$KPY_SUM" > "$VENV/.requirements-kafka-python.sha256"
    fi
fi

# kafkajs: compat-tests/node (package.json + package-lock.json), `npm ci` when the lock changed
if [[ " ${CLIENTS[*]} " == *" kafkajs "* ]]; then
    command -v npm >/dev/null || { say "installing nodejs and npm (apt)"; apt_install nodejs npm; }
    LOCK_SUM="$(sha256sum "$COMPAT/node/package-lock.json" | cut -d' ' -f1)"
    if [[ "$(cat "$COMPAT/node/node_modules/.lock.sha256" 2>/dev/null)" != "$LOCK_SUM" ]]; then
        say "npm ci in $COMPAT/node (log: $LOGS/npm-ci.log)"
        if (cd "$COMPAT/node" && npm ci --no-audit --no-fund) > "$LOGS/npm-ci.log" 2>&1; then
            echo "$LOCK_SUM" > "$COMPAT/node/node_modules/.lock.sha256"
        else
            say "npm ci failed (the kafkajs phases will report it): $(tail -n 2 "$LOGS/npm-ci.log" | tr '\n' ' ')"
        fi
    fi
fi

if [[ $RUN_REF -eq 1 ]]; then
    command -v java >/dev/null || { say "installing java (apt)"; apt_install openjdk-17-jre-headless; }
    command -v mvn >/dev/null || { say "installing maven (apt)"; apt_install maven; }
    "$REF_SCRIPT" fetch >/dev/null
fi

# java: a JDK and Maven build compat-tests/java once here (offline once the local Maven
# repository has it all); kafka-cli: Kafka's tools run from the reference jars
if [[ " ${CLIENTS[*]} " =~ \ (java|kafka-cli)\  ]]; then
    command -v javac >/dev/null || { say "installing a JDK (apt)"; apt_install openjdk-17-jdk-headless; }
    command -v mvn >/dev/null || { say "installing maven (apt)"; apt_install maven; }
    if [[ " ${CLIENTS[*]} " == *" kafka-cli "* ]]; then
        "$REF_SCRIPT" fetch >/dev/null || say "could not get the Kafka jars (kafka-cli phases will report it)"
    fi
    if [[ " ${CLIENTS[*]} " == *" java "* ]]; then
        say "building the Java scenario (log: $LOGS/java-build.log)"
        "$COMPAT/java/scenario.sh" --build > "$LOGS/java-build.log" 2>&1 \
            || say "Java scenario build failed (its phases will report it): $(tail -n 2 "$LOGS/java-build.log" | tr '\n' ' ')"
    fi
fi

# the Go clients share one Go module (compat-tests/go), built once here rather than inside
# the first phase's time limit
if [[ " ${CLIENTS[*]} " =~ \ (franz-go|sarama|kafka-go)\  ]]; then
    command -v go >/dev/null || { say "installing go (apt)"; apt_install golang-go; }
    say "building the Go scenario (log: $LOGS/go-build.log)"
    "$COMPAT/go/scenario.sh" build > "$LOGS/go-build.log" 2>&1 \
        || say "Go scenario build failed (its phases will report it): $(tail -n 2 "$LOGS/go-build.log" | tr '\n' ' ')"
fi

# ------------------------------------------------------------------------ helpers

free_port_pair() {  # a port p such that p and p+1 are both free on 127.0.0.1
    "$PYTHON3" - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    p = random.randrange(20000, 30000)
    if free(p) and free(p + 1):
        print(p)
        break
EOF
}

wait_port() {  # wait_port PORT SECONDS [PID]
    local deadline=$((SECONDS + $2))
    while (( SECONDS < deadline )); do
        if [[ -n "${3:-}" ]] && ! kill -0 "$3" 2>/dev/null; then return 1; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    return 1
}

# --- this broker
ours_launch() {
    echo "===== $(date -Is) starting $BROKER_BIN (copied to $OURS_BIN) --config $OURS_CFG" >> "$LOGS/broker.log"
    # own process group (setsid): stopping it also reaches anything the broker started
    NO_COLOR=1 setsid "$OURS_BIN" --config "$OURS_CFG" >> "$LOGS/broker.log" 2>&1 < /dev/null &
    OURS_PID=$!
    if ! wait_port "$OURS_PORT" 30 "$OURS_PID"; then
        local why="did not listen on 127.0.0.1:$OURS_PORT within 30s"
        if ! kill -0 "$OURS_PID" 2>/dev/null; then
            local rc=0
            wait "$OURS_PID" || rc=$?
            why="exited with status $rc during startup: $(broker_log_tail)"
        else
            kill -KILL -- "-$OURS_PID" 2>/dev/null || kill -KILL "$OURS_PID" 2>/dev/null || true
        fi
        OURS_PID=""
        event ours "broker $why"
        return 1
    fi
}

broker_log_tail() {  # the broker's last log lines on one line, without colour codes
    grep -v "^=====" "$LOGS/broker.log" | tail -n 3 | sed 's/\x1b\[[0-9;]*m//g' | tr '\n' ' ' | cut -c1-600 || true
}

ours_start() {
    OURS_PORT="$(free_port_pair)"
    # Run a copy of the binary: a concurrent `cargo build` cannot swap it between the two
    # halves of the run, and name-based kills aimed at other `target/release/broker`
    # processes on a shared machine do not hit it.
    mkdir -p "$RUN_TMP/sut"
    OURS_BIN="$RUN_TMP/sut/server-under-test"
    cp "$BROKER_BIN" "$OURS_BIN"
    OURS_DATA="$RUN_TMP/sut/data"
    mkdir -p "$OURS_DATA"
    OURS_CFG="$RUN_TMP/sut/config.json"
    cat > "$OURS_CFG" <<EOF
{"data_dir": "$OURS_DATA", "group_initial_rebalance_delay": "0s",
 "server": {"host": "127.0.0.1", "port": "$OURS_PORT"}}
EOF
    cp "$OURS_CFG" "$LOGS/broker.json"
    : > "$LOGS/broker.log"
    ours_launch
}

ours_stop() {  # SIGTERM; records it when the broker needs SIGKILL or exits non-zero
    [[ -n "$OURS_PID" ]] || return 0
    local pid="$OURS_PID" rc=0
    OURS_PID=""
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 80); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        event ours "broker did not exit within 20s of SIGTERM; killed with SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    kill -KILL -- "-$pid" 2>/dev/null || true   # leftovers of the process group, if any
    if [[ $rc -ne 0 && $rc -ne 143 ]]; then
        event ours "broker exited with status $rc after SIGTERM"
    fi
}

ours_alive() { [[ -n "$OURS_PID" ]] && kill -0 "$OURS_PID" 2>/dev/null; }

# --- this broker as a three-node Raft cluster (--cluster)
CLUSTER_KPORTS=()   # Kafka ports of nodes 1-3
CLUSTER_RPORTS=()   # Raft ports of nodes 1-3
CLUSTER_BOOTSTRAP=""

free_ports() {  # free_ports N: N distinct ports, each free on 127.0.0.1 (20000-30000)
    "$PYTHON3" - "$1" <<'EOF'
import random, socket, sys
n, got = int(sys.argv[1]), []
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(2000):
    p = random.randrange(20000, 30000)
    if p not in got and free(p):
        got.append(p)
        if len(got) == n:
            break
print(" ".join(map(str, got)))
EOF
}

cluster_start() {  # ports, configs and data dirs in the run's temp dir, then cluster_launch
    local ports i members
    read -r -a ports <<< "$(free_ports 6)"
    [[ ${#ports[@]} -eq 6 ]] || { event "$OURS_T" "could not find 6 free ports"; return 1; }
    CLUSTER_KPORTS=("${ports[@]:0:3}")
    CLUSTER_RPORTS=("${ports[@]:3:3}")
    CLUSTER_BOOTSTRAP="127.0.0.1:${CLUSTER_KPORTS[0]},127.0.0.1:${CLUSTER_KPORTS[1]},127.0.0.1:${CLUSTER_KPORTS[2]}"
    members="\"127.0.0.1:${CLUSTER_RPORTS[0]}\", \"127.0.0.1:${CLUSTER_RPORTS[1]}\", \"127.0.0.1:${CLUSTER_RPORTS[2]}\""
    mkdir -p "$RUN_TMP/sut"
    OURS_BIN="$RUN_TMP/sut/server-under-test"   # a copy, as for the single node
    cp "$BROKER_BIN" "$OURS_BIN"
    for i in 1 2 3; do
        local dir="$RUN_TMP/sut/node$i"
        mkdir -p "$dir/data" "$dir/raft"
        cat > "$dir/config.json" <<EOF
{"data_dir": "$dir/data", "group_initial_rebalance_delay": "0s",
 "default_replication_factor": $CLUSTER_RF, "min_insync_replicas": $CLUSTER_MIN_ISR,
 "server": {"host": "127.0.0.1", "port": "${CLUSTER_KPORTS[$((i - 1))]}"},
 "cluster": {"enabled": true, "node_id": $i, "raft_address": "127.0.0.1:${CLUSTER_RPORTS[$((i - 1))]}",
             "initial_members": [$members], "data_dir": "$dir/raft", "rtt_ms": 50}}
EOF
        cp "$dir/config.json" "$LOGS/node$i.json"
        : > "$LOGS/node$i.log"
    done
    CLUSTER_PIDS=("" "" "")
    cluster_launch
}

cluster_metadata() {  # cluster_metadata PORT...: "brokers/controller" per port (Metadata v1)
    "$PYTHON3" - "$@" <<'EOF'
import socket, struct, sys
def metadata(port):
    body = struct.pack(">hhih", 3, 1, 1, 5) + b"probe" + struct.pack(">i", 0)  # v1, no topics
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(2)
        s.sendall(struct.pack(">i", len(body)) + body)
        def read(n):
            b = b""
            while len(b) < n:
                c = s.recv(n - len(b))
                if not c:
                    raise OSError("connection closed")
                b += c
            return b
        data = read(struct.unpack(">i", read(4))[0])
    at = 4
    (n,) = struct.unpack_from(">i", data, at); at += 4
    for _ in range(n):
        at += 4
        (hl,) = struct.unpack_from(">h", data, at); at += 2 + hl
        at += 4
        (rl,) = struct.unpack_from(">h", data, at); at += 2 + max(rl, 0)
    (controller,) = struct.unpack_from(">i", data, at)
    return n, controller
out = []
for p in sys.argv[1:]:
    try:
        out.append("%d/%d" % metadata(int(p)))
    except (OSError, struct.error) as e:
        out.append("-/-")
print(" ".join(out))
EOF
}

cluster_launch() {  # start the three nodes at once (each waits for a quorum), then wait (60 s)
    local i t0=$SECONDS
    for i in 1 2 3; do
        echo "===== $(date -Is) starting $BROKER_BIN (copied to $OURS_BIN) --config $RUN_TMP/sut/node$i/config.json" >> "$LOGS/node$i.log"
        NO_COLOR=1 setsid "$OURS_BIN" --config "$RUN_TMP/sut/node$i/config.json" >> "$LOGS/node$i.log" 2>&1 < /dev/null &
        CLUSTER_PIDS[i - 1]=$!
    done
    # until every node answers Metadata with 3 brokers and the same controller
    local deadline=$((SECONDS + 60)) seen="" why="" answers a ctl ok
    while (( SECONDS < deadline )); do
        for i in 1 2 3; do
            if ! kill -0 "${CLUSTER_PIDS[i - 1]}" 2>/dev/null; then
                why="node $i exited during startup: $(node_log_tail "$i")"
                break 2
            fi
        done
        seen="$(cluster_metadata "${CLUSTER_KPORTS[@]}" 2>/dev/null || true)"
        read -r -a answers <<< "$seen"
        ctl="${answers[0]#*/}" ok=1
        [[ ${#answers[@]} -eq 3 ]] || ok=0
        for a in "${answers[@]}"; do
            [[ "${a%/*}" == 3 && "${a#*/}" == "$ctl" && "$ctl" != -1 ]] || ok=0
        done
        if [[ $ok -eq 1 ]]; then
            say "$OURS_T: 3 nodes up in $((SECONDS - t0))s, controller is node $ctl (brokers/controller per node: $seen)"
            return 0
        fi
        sleep 0.5
    done
    [[ -n "$why" ]] || why="no agreement on 3 brokers and one controller within 60s (brokers/controller per node: ${seen:-none})"
    event "$OURS_T" "cluster $why"
    cluster_stop quiet
    return 1
}

node_log_tail() {  # node_log_tail N: node N's last log lines on one line, without colour codes
    grep -v "^=====" "$LOGS/node$1.log" | tail -n 3 | sed 's/\x1b\[[0-9;]*m//g' | tr '\n' ' ' | cut -c1-600 || true
}

cluster_stop() {  # SIGTERM to all three at once; records SIGKILLs and non-zero exits
    local i pid rc
    for pid in "${CLUSTER_PIDS[@]}"; do
        if [[ -n "$pid" ]]; then kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for i in 1 2 3; do
        pid="${CLUSTER_PIDS[i - 1]:-}"
        [[ -n "$pid" ]] || continue
        CLUSTER_PIDS[i - 1]=""
        for _ in $(seq 1 80); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            [[ "${1:-}" == quiet ]] || event "$OURS_T" "node $i did not exit within 20s of SIGTERM; killed with SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        kill -KILL -- "-$pid" 2>/dev/null || true
        if [[ $rc -ne 0 && $rc -ne 143 && "${1:-}" != quiet ]]; then
            event "$OURS_T" "node $i exited with status $rc after SIGTERM"
        fi
    done
}

cluster_alive() {
    local pid
    [[ ${#CLUSTER_PIDS[@]} -eq 3 ]] || return 1
    for pid in "${CLUSTER_PIDS[@]}"; do
        [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    done
    return 0
}

cluster_revive() {  # cluster_revive BEFORE: a node died; record it, stop the rest, start all three
    local i pid rc
    for i in 1 2 3; do
        pid="${CLUSTER_PIDS[i - 1]:-}"
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            rc=0
            wait "$pid" 2>/dev/null || rc=$?
            CLUSTER_PIDS[i - 1]=""
            event "$OURS_T" "node $i died (exit status $rc) before $1; last log lines: $(node_log_tail "$i")"
        fi
    done
    cluster_stop
    cluster_launch || true
}

# --- this broker, one node or the cluster (run_target and the franz-go suite call these)
sut_start() { if [[ $CLUSTER -eq 1 ]]; then cluster_start; else ours_start; fi; }
sut_launch() { if [[ $CLUSTER -eq 1 ]]; then cluster_launch; else ours_launch; fi; }
sut_stop() { if [[ $CLUSTER -eq 1 ]]; then cluster_stop; else ours_stop; fi; }
sut_alive() { if [[ $CLUSTER -eq 1 ]]; then cluster_alive; else ours_alive; fi; }
sut_bootstrap() { if [[ $CLUSTER -eq 1 ]]; then echo "$CLUSTER_BOOTSTRAP"; else echo "127.0.0.1:$OURS_PORT"; fi; }

# --- Apache Kafka
ref_start() {
    # one retry on a fresh port: a start can fail by chance (e.g. the random cluster id
    # starts with '-', and kafka.tools.StorageTool takes it for an option)
    local attempt
    for attempt in 1 2; do
        REF_PORT="$(free_port_pair)"
        if KAFKA_REF_LOG="$LOGS/kafka-reference.log" "$REF_SCRIPT" start "$REF_PORT" >/dev/null 2>> "$LOGS/kafka-reference.script.log"; then
            return 0
        fi
        "$REF_SCRIPT" stop "$REF_PORT" >/dev/null 2>&1 || true
        [[ $attempt -eq 1 ]] && event reference "Apache Kafka did not start (retrying once): $(tail -n 2 "$LOGS/kafka-reference.script.log" | tr '\n' ' ')"
    done
    return 1
}
ref_restart() { "$REF_SCRIPT" restart "$REF_PORT" >/dev/null 2>> "$LOGS/kafka-reference.script.log"; }
ref_stop() { "$REF_SCRIPT" stop "$REF_PORT" >/dev/null 2>> "$LOGS/kafka-reference.script.log" || true; REF_PORT=""; }
ref_alive() { "$REF_SCRIPT" status "$REF_PORT" >/dev/null 2>&1; }

# ------------------------------------------------------------------------ scenarios

go_checks() {  # go_checks STAGE: what compat-tests/go/scenario.sh reports (basic only)
    case "$1" in
        produce) echo "create_topic produce_timestamps produce_none produce_gzip produce_snappy produce_lz4 produce_zstd large_record message_too_large idempotent_producer group_join group_leave_rebalance group_commit_on_revoke group_commit admin_describe_topic admin_create_partitions admin_alter_configs admin_describe_configs admin_alter_configs_legacy" ;;
        verify|restart-verify) echo "metadata consume_all content_timestamps content_none content_gzip content_snappy content_lz4 content_zstd content_large partition_order record_timestamps offsets_for_times offsets_for_times_compressed idempotent_log group_committed group_resume admin_persisted" ;;
        cleanup) echo "delete_topic" ;;
    esac
}

js_py_checks() {  # js_py_checks SCENARIO STAGE: what kafkajs / kafka-python report
    case "$1:$2" in
        basic:produce) echo "create_topic produce_timestamps produce_none produce_gzip produce_snappy produce_lz4 produce_zstd large_record message_too_large idempotent_producer admin_describe_topic admin_create_partitions admin_alter_configs admin_alter_configs_legacy admin_describe_configs" ;;
        basic:verify|basic:restart-verify) echo "metadata consume_all content_timestamps content_none content_gzip content_snappy content_lz4 content_zstd content_large partition_order record_timestamps offsets_for_times offsets_for_times_compressed idempotent_log admin_persisted" ;;
        basic:cleanup) echo "delete_topic" ;;
        groups:produce) echo "group_create_topic group_produce" ;;
        groups:verify) echo "group_join group_consume group_commit group_leave_rebalance group_resume_after_rebalance group_list group_describe group_commit_before_restart group_produce_more group_close" ;;
        groups:restart-verify) echo "group_committed_after_restart group_resume_after_restart group_close" ;;
        groups:cleanup) echo "group_list_offsets group_delete group_delete_topic" ;;
    esac
}

txn_checks() {  # txn_checks CLIENT STAGE: what the transaction scenarios report
    case "$1:$2" in
        confluent:produce) echo "txn_create_topics txn_init txn_commit txn_abort txn_commit_after_abort txn_abort_again txn_commit_again txn_open_invisible txn_open_visible_after_commit txn_zombie_fenced txn_fenced_successor_commits txn_ctp_input txn_send_offsets" ;;
        java:produce) echo "txn_create_topics txn_init txn_commit txn_abort txn_commit_after_abort txn_abort_again txn_commit_again txn_open_invisible txn_admin_describe txn_admin_list txn_admin_describe_producers txn_open_visible_after_commit txn_zombie_fenced txn_fenced_successor_commits txn_admin_fence_producers txn_timeout_abort txn_ctp_input txn_send_offsets" ;;
        confluent:verify|java:verify) echo "txn_read_committed txn_read_uncommitted txn_offsets_committed txn_leave_open" ;;
        confluent:restart-verify|java:restart-verify) echo "txn_read_committed txn_read_uncommitted txn_offsets_committed txn_open_after_restart txn_abort_open_by_init" ;;
        confluent:cleanup|java:cleanup) echo "txn_delete_group txn_delete_topics" ;;
        kafka-cli:produce) echo "txn_create_topics txn_perf_producer txn_cli_list txn_cli_describe txn_cli_open txn_cli_find_hanging txn_cli_abort txn_cli_fence" ;;
        kafka-cli:verify|kafka-cli:restart-verify) echo "txn_cli_read_committed txn_cli_read_uncommitted txn_cli_describe_persisted" ;;
        kafka-cli:cleanup) echo "txn_delete_topics" ;;
    esac
}

canonical_checks() {  # canonical_checks SCENARIO CLIENT STAGE: the checks it normally reports
    if [[ $1 == txn ]]; then txn_checks "$2" "$3"; return 0; fi
    case "$2" in franz-go|sarama|kafka-go) [[ $1 == basic ]] && go_checks "$3"; return 0 ;; esac
    case "$2" in kafkajs|kafka-python) js_py_checks "$1" "$3"; return 0 ;; esac
    case "$1:$3" in                # (for "not run" bookkeeping)
        basic:produce) echo "create_topic produce_timestamps produce_none produce_gzip produce_snappy produce_lz4 produce_zstd message_too_large"
            if [[ $2 == confluent ]]; then echo "compacted_keyless_rejected compacted_mixed_batch_rejected compacted_keyed_accepted"; fi ;;
        basic:verify|basic:restart-verify) echo "metadata consume_all content_timestamps content_none content_gzip content_snappy content_lz4 content_zstd partition_order record_timestamps offsets_for_times offsets_for_times_compressed" ;;
        basic:cleanup) echo "delete_topic" ;;
        groups:produce) echo "group_create_topic group_produce" ;;
        groups:verify)
            if [[ $2 == kcat ]]; then echo "group_consume group_produce_more"
            elif [[ $2 == kafka-cli ]]; then echo "group_consume group_list group_describe group_produce_more"
            else echo "group_join group_consume group_commit group_leave_rebalance group_resume_after_rebalance group_list group_describe group_delete_nonempty group_commit_before_restart group_produce_more group_close"; fi ;;
        groups:restart-verify)
            if [[ $2 == kcat ]]; then echo "group_resume_after_restart group_resume_again"
            elif [[ $2 == kafka-cli ]]; then echo "group_committed_after_restart group_resume_after_restart group_reset_offsets"
            else echo "group_committed_after_restart group_resume_after_restart group_list group_describe group_commit group_close"; fi ;;
        groups:cleanup)
            if [[ $2 == kcat ]]; then echo "group_delete_topic"
            elif [[ $2 == kafka-cli ]]; then echo "group_delete group_delete_topic"
            else echo "group_list_offsets group_delete group_delete_topic"; fi ;;
    esac
}

scenario_cmd() {  # scenario_cmd CLIENT SCENARIO BOOTSTRAP STAGE STATE_DIR
    # the basic scenarios run `verify` again after the restart; the group scenarios have a
    # phase of their own for it (the consumer must resume from the committed offsets)
    local phase="$4"
    [[ $2 == basic && $phase == restart-verify ]] && phase=verify
    case "$1:$2" in
        kcat:basic) echo "$COMPAT/kcat/scenario.sh" "$3" "$phase" "$5" ;;
        kcat:groups) echo "$COMPAT/kcat/scenario_groups.sh" "$3" "$phase" "$5" ;;
        confluent:basic) echo "$VENV/bin/python" "$COMPAT/python/scenario_confluent.py" "$3" --phase "$phase" --state "$5/state.json" ;;
        confluent:groups) echo "$VENV/bin/python" "$COMPAT/python/scenario_groups.py" "$3" --phase "$phase" --state "$5/state.json" ;;
        confluent:txn) echo "$VENV/bin/python" "$COMPAT/python/scenario_txn.py" "$3" --phase "$phase" --state "$5/state.json" ;;
        # one Go program per client; its basic scenario includes groups, idempotence, admin
        franz-go:basic|sarama:basic|kafka-go:basic) echo "$COMPAT/go/scenario.sh" "$1" "$3" "$phase" "$5" ;;
        java:basic) echo "$COMPAT/java/scenario.sh" "$3" "$phase" "$5" ;;
        java:groups) echo "$COMPAT/java/scenario.sh" --groups "$3" "$phase" "$5" ;;
        java:txn) echo "$COMPAT/java/scenario.sh" --txn "$3" "$phase" "$5" ;;
        kafka-cli:basic) echo "$COMPAT/kafka-cli/scenario.sh" "$3" "$phase" "$5" ;;
        kafka-cli:groups) echo "$COMPAT/kafka-cli/scenario_groups.sh" "$3" "$phase" "$5" ;;
        kafka-cli:txn) echo "$COMPAT/kafka-cli/scenario_txn.sh" "$3" "$phase" "$5" ;;
        kafkajs:basic|kafkajs:groups) echo node "$COMPAT/node/scenario_kafkajs.js" "$3" --scenario "$2" --phase "$4" --state "$5/state.json" ;;
        kafka-python:basic|kafka-python:groups) echo "$VENV/bin/python" "$COMPAT/python/scenario_kafka_python.py" "$3" --scenario "$2" --phase "$4" --state "$5/state.json" ;;
    esac
}

FAILED_OURS=0
FAILED_REF=0

run_phase() {  # run_phase TARGET CLIENT SCENARIO STAGE BOOTSTRAP
    local target="$1" client="$2" scenario="$3" stage="$4" bootstrap="$5"
    local name="$client"   # basic keeps its log names: .logs/TARGET-CLIENT-STAGE.out
    [[ $scenario == basic ]] || name="$client-$scenario"
    local state="$LOGS/state/$target-$name"
    mkdir -p "$state"
    local out="$LOGS/$target-$name-$stage.out" err="$LOGS/$target-$name-$stage.err"
    local rc=0
    # shellcheck disable=SC2046
    timeout "$PHASE_TIMEOUT" $(scenario_cmd "$client" "$scenario" "$bootstrap" "$stage" "$state") > "$out" 2> "$err" || rc=$?
    sed "s/^/   [$target $name $stage] /" "$out" >&2
    local seen=" " nfail=0 line status name msg
    while IFS= read -r line; do
        case "$line" in
            "PASS "*) status=PASS; name="${line#PASS }"; msg="" ;;
            "FAIL "*) status=FAIL; name="${line#FAIL }"; name="${name%%:*}"; msg="${line#FAIL *: }" ;;
            "SKIP "*) status=SKIP; name="${line#SKIP }"; name="${name%%:*}"; msg="${line#SKIP *: }" ;;
            *) continue ;;
        esac
        [[ $status == FAIL ]] && nfail=$((nfail + 1))
        seen+="$name "
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$client" "$stage" "$name" "$status" "$msg" >> "$RESULTS"
    done < "$out"
    if [[ $rc -ne 0 ]]; then
        local why
        if [[ $rc -eq 124 ]]; then why="phase timed out after ${PHASE_TIMEOUT}s"; else why="phase exited with status $rc"; fi
        local last
        last="$(grep -v '^\s*$' "$err" | tail -n 1 | cut -c1-300 || true)"
        [[ -n "$last" ]] && why="$why ($last)"
        local c first=1
        for c in $(canonical_checks "$scenario" "$client" "$stage"); do
            [[ "$seen" == *" $c "* ]] && continue
            # explain the crash once when the phase printed no failure of its own
            if [[ $nfail -eq 0 && $first -eq 1 ]]; then msg="$why"; first=0; else msg=""; fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$client" "$stage" "$c" NOTRUN "$msg" >> "$RESULTS"
        done
        if [[ $target != reference ]]; then FAILED_OURS=1; else FAILED_REF=1; fi
    fi
    if [[ $nfail -gt 0 ]]; then
        if [[ $target != reference ]]; then FAILED_OURS=1; else FAILED_REF=1; fi
    fi
}

mark_all_notrun() {  # mark_all_notrun TARGET WHY
    local client scenario stage c first=1 msg
    for client in "${CLIENTS[@]}"; do
        for scenario in "${SCENARIOS[@]}"; do
            for stage in produce verify restart-verify cleanup; do
                for c in $(canonical_checks "$scenario" "$client" "$stage"); do
                    if [[ $first -eq 1 ]]; then msg="$2"; first=0; else msg=""; fi
                    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$client" "$stage" "$c" NOTRUN "$msg" >> "$RESULTS"
                done
            done
        done
    done
}

# franz-go's own kgo tests, the allow-listed ones (compat-tests/franz-go-suite/allowlist.txt),
# as a step of their own after the scenarios; one failing against this broker fails the run
run_franz_suite() {  # run_franz_suite TARGET BOOTSTRAP
    [[ $FRANZ_SUITE -eq 1 && " ${CLIENTS[*]} " == *" franz-go "* ]] || return 0
    if [[ $1 != reference ]] && ! sut_alive; then
        if [[ $CLUSTER -eq 1 ]]; then cluster_revive "the franz-go suite"; else ours_launch || true; fi
    fi
    local out="$LOGS/$1-franz-go-suite.out" rc=0 n summary failed
    n="$(sed 's/#.*//; /^[[:space:]]*$/d' "$COMPAT/franz-go-suite/allowlist.txt" | wc -l)"
    say "$1: franz-go kgo suite ($n allow-listed tests)"
    timeout 900 "$COMPAT/franz-go-suite/run.sh" "$2" --out "$LOGS/$1-franz-go-suite.gotest.log" \
        > "$out" 2> "$LOGS/$1-franz-go-suite.err" || rc=$?
    sed "s/^/   [$1 franz-go-suite] /" "$out" | grep -v '^   \[[a-z]* franz-go-suite\] PASS ' >&2 || true
    summary="$(tail -n 1 "$out" 2>/dev/null)"
    if [[ $rc -ne 0 ]]; then
        failed="$(grep '^FAIL ' "$out" | head -n 3 | cut -c1-300 | tr '\n' ' ')"
        event "$1" "franz-go kgo suite (compat-tests/franz-go-suite, $n allow-listed tests): ${summary:-no result}; exit status $rc; ${failed:-see .logs/$1-franz-go-suite.err}"
        if [[ $1 != reference ]]; then FAILED_OURS=1; else FAILED_REF=1; fi
    else
        event "$1" "franz-go kgo suite (compat-tests/franz-go-suite): $summary of the $n allow-listed tests"
    fi
}

run_target() {  # run_target ours|cluster|reference
    local target="$1" bootstrap client scenario stage
    if [[ $target == cluster ]]; then export COMPAT_REPLICATION_FACTOR=$CLUSTER_RF; else export COMPAT_REPLICATION_FACTOR=1; fi
    if [[ $target != reference ]]; then
        sut_start || { mark_all_notrun "$target" "broker did not start (see Notes)"; FAILED_OURS=1; return; }
        bootstrap="$(sut_bootstrap)"
    else
        if ! ref_start; then
            event reference "Apache Kafka did not start: $(tail -n 3 "$LOGS/kafka-reference.script.log" | tr '\n' ' ')"
            mark_all_notrun reference "Apache Kafka did not start"
            FAILED_REF=1
            return
        fi
        bootstrap="127.0.0.1:$REF_PORT"
    fi
    say "$target broker on $bootstrap (topics with replication factor $COMPAT_REPLICATION_FACTOR)"
    for stage in produce verify restart-verify cleanup; do
        if [[ $stage == restart-verify ]]; then
            say "$target: restarting the broker"
            local t0=$SECONDS
            if [[ $target != reference ]]; then
                sut_stop
                sut_launch || true
            else
                ref_restart || event reference "restart failed"
            fi
            say "$target: restarted in $((SECONDS - t0))s"
        fi
        for client in "${CLIENTS[@]}"; do
            for scenario in "${SCENARIOS[@]}"; do
                [[ -n "$(scenario_cmd "$client" "$scenario" "$bootstrap" "$stage" -)" ]] || continue
                if [[ $target == cluster ]] && ! cluster_alive; then
                    cluster_revive "$client $scenario $stage"
                elif [[ $target == ours ]] && ! ours_alive; then
                    if [[ -n "$OURS_PID" ]]; then
                        local rc=0
                        wait "$OURS_PID" 2>/dev/null || rc=$?
                        local hint=""
                        if grep -v '^=====' "$LOGS/broker.log" | tail -n 3 | grep -q "shutting down"; then
                            hint=" (it logged a signal shutdown that run.sh did not send: another process on this machine signalled it)"
                        fi
                        event ours "broker process died (exit status $rc) before $client $scenario $stage$hint; last log lines: $(broker_log_tail)"
                        OURS_PID=""
                    fi
                    ours_launch || true
                fi
                say "$target: $client $scenario $stage"
                run_phase "$target" "$client" "$scenario" "$stage" "$bootstrap"
            done
        done
    done
    run_franz_suite "$target" "$bootstrap"
    if [[ $target != reference ]]; then sut_stop; else ref_stop; fi
}

# ------------------------------------------------------------------------ main

START=$SECONDS
WANT_OURS=$RUN_OURS
if [[ $RUN_OURS -eq 1 && $BUILD -eq 1 ]]; then
    say "cargo build --release (log: $LOGS/cargo-build.log)"
    if ! (cd "$REPO" && cargo build --release) > "$LOGS/cargo-build.log" 2>&1; then
        first_err="$(grep -m1 -E '^error' "$LOGS/cargo-build.log" || tail -n 1 "$LOGS/cargo-build.log" || true)"
        event "$OURS_T" "cargo build --release failed: $first_err"
        mark_all_notrun "$OURS_T" "cargo build --release failed"
        FAILED_OURS=1
        RUN_OURS=0
    fi
fi
if [[ $RUN_OURS -eq 1 ]]; then
    if [[ ! -x "$BROKER_BIN" ]]; then
        event "$OURS_T" "no broker binary at $BROKER_BIN"
        mark_all_notrun "$OURS_T" "no broker binary"
        FAILED_OURS=1
    else
        run_target "$OURS_T"
    fi
fi
if [[ $RUN_REF -eq 1 ]]; then
    run_target reference
fi

# ------------------------------------------------------------------------ MATRIX.md

KCAT_LABEL="$({ kcat -V 2>/dev/null || true; } | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/kcat \1 (librdkafka \2)/p' | head -n1)"
CONFLUENT_LABEL="$("$VENV/bin/python" -c 'import importlib.metadata as m, confluent_kafka as c; print("confluent-kafka %s (librdkafka %s)" % (m.version("confluent-kafka"), c.libversion()[0]))' 2>/dev/null || echo confluent-kafka)"
KAFKA_VER="${KAFKA_VERSION:-4.1.1}"
JAVA_CLIENTS_VER="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$COMPAT/java/pom.xml" | head -n1)"
export JAVA_LABEL="Apache Kafka Java client (kafka-clients $JAVA_CLIENTS_VER, $(java -version 2>&1 | head -n1 | sed 's/"//g'))"
export KAFKAJS_LABEL="kafkajs $(sed -n 's/.*"kafkajs": "\(.*\)".*/\1/p' "$COMPAT/node/package.json" | head -n1) (Node.js $(node --version 2>/dev/null || echo '?'); codecs: kafkajs-snappy, kafkajs-lz4, zstd-codec)"
export KAFKA_PYTHON_LABEL="$("$VENV/bin/python" -c 'import importlib.metadata as m; print("kafka-python %s (python-snappy %s, lz4 %s, zstandard %s)" % tuple(m.version(p) for p in ("kafka-python", "python-snappy", "lz4", "zstandard")))' 2>/dev/null || echo kafka-python)"
export KAFKA_CLI_LABEL="Apache Kafka $KAFKA_VER command-line tools (kafka-topics, kafka-configs, kafka-console-producer/-consumer, kafka-consumer-groups, kafka-get-offsets, kafka-producer-perf-test)"
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || true)"
CLUSTER_RF="$CLUSTER_RF" CLUSTER_MIN_ISR="$CLUSTER_MIN_ISR" GO_MOD="$COMPAT/go/go.mod" "$PYTHON3" - "$RUN_TMP/meta.json" "$RESULTS" "$EVENTS" "$COMMIT" "$KCAT_LABEL" "$CONFLUENT_LABEL" \
        "$KAFKA_VER" "${CLIENTS[*]}" "${SCENARIOS[*]}" <<'EOF'
import datetime, json, sys
out, results, events, commit, kcat_label, confluent_label, kafka_ver, clients, scenarios = sys.argv[1:]
paths = {("kcat", "basic"): "compat-tests/kcat/scenario.sh",
         ("kcat", "groups"): "compat-tests/kcat/scenario_groups.sh",
         ("confluent", "basic"): "compat-tests/python/scenario_confluent.py",
         ("confluent", "groups"): "compat-tests/python/scenario_groups.py",
         ("confluent", "txn"): "compat-tests/python/scenario_txn.py",
         ("franz-go", "basic"): "compat-tests/go/scenario.sh",
         ("sarama", "basic"): "compat-tests/go/scenario.sh",
         ("kafka-go", "basic"): "compat-tests/go/scenario.sh",
         ("java", "basic"): "compat-tests/java/scenario.sh",
         ("java", "groups"): "compat-tests/java/scenario.sh --groups",
         ("java", "txn"): "compat-tests/java/scenario.sh --txn",
         ("kafka-cli", "basic"): "compat-tests/kafka-cli/scenario.sh",
         ("kafka-cli", "groups"): "compat-tests/kafka-cli/scenario_groups.sh",
         ("kafka-cli", "txn"): "compat-tests/kafka-cli/scenario_txn.sh",
         ("kafkajs", "basic"): "compat-tests/node/scenario_kafkajs.js --scenario basic",
         ("kafkajs", "groups"): "compat-tests/node/scenario_kafkajs.js --scenario groups",
         ("kafka-python", "basic"): "compat-tests/python/scenario_kafka_python.py --scenario basic",
         ("kafka-python", "groups"): "compat-tests/python/scenario_kafka_python.py --scenario groups"}
scripts = {(c, s): paths[(c, s)] for c in clients.split() for s in scenarios.split() if (c, s) in paths}
def via(client):
    return " via " + ", ".join(f"`{p}`" for (c, _), p in scripts.items() if c == client)
import os
gomod = {}
for ln in open(os.environ["GO_MOD"]):
    f = ln.split()
    if len(f) >= 2 and f[0].startswith("github.com/"):
        gomod[f[0]] = f[1]
labels = {"franz-go": "franz-go %s (kgo, kadm %s)" % (gomod.get("github.com/twmb/franz-go", "?"),
                                                      gomod.get("github.com/twmb/franz-go/pkg/kadm", "?")) + via("franz-go"),
          "sarama": "IBM/sarama %s" % gomod.get("github.com/IBM/sarama", "?") + via("sarama"),
          "kafka-go": "segmentio/kafka-go %s" % gomod.get("github.com/segmentio/kafka-go", "?") + via("kafka-go"),
          "kcat": (kcat_label or "kcat") + via("kcat"),
          "confluent": confluent_label + via("confluent"),
          "java": os.environ.get("JAVA_LABEL", "java") + via("java"),
          "kafka-cli": os.environ.get("KAFKA_CLI_LABEL", "kafka-cli") + via("kafka-cli"),
          "kafkajs": os.environ.get("KAFKAJS_LABEL", "kafkajs") + via("kafkajs"),
          "kafka-python": os.environ.get("KAFKA_PYTHON_LABEL", "kafka-python") + via("kafka-python")}
have = {line.split("\t")[0] for line in open(results) if line.strip()}
targets = {}
if "ours" in have:
    targets["ours"] = "`target/release/broker` built from this repository"
if "cluster" in have:
    targets["cluster"] = ("`target/release/broker` built from this repository, as a three-node Raft "
                          "cluster (topics created with replication factor %s, `min_insync_replicas` "
                          "%s, `rtt_ms` 50; clients bootstrap from all three; restart = all three)"
                          % (os.environ["CLUSTER_RF"], os.environ["CLUSTER_MIN_ISR"]))
if "reference" in have:
    targets["reference"] = f"Apache Kafka {kafka_ver} (KRaft, single node, `scripts/kafka-reference.sh`)"
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "commit": commit,
    "clients": {c: labels[c] for c in clients.split()},
    "targets": targets,
    "events": [json.loads(line) for line in open(events) if line.strip()],
    "scenarios": {f"{c}/{s}": p for (c, s), p in scripts.items()},
}, open(out, "w"))
EOF
"$PYTHON3" "$COMPAT/render_matrix.py" "$RESULTS" "$RUN_TMP/meta.json" "$MATRIX_OUT"
say "wrote $MATRIX_OUT ($((SECONDS - START))s)"

grep -E '^(ours|cluster|reference)' "$RESULTS" | awk -F'\t' '{n[$1" "$5]++} END {for (k in n) print "   " k ": " n[k]}' | sort >&2
if [[ $WANT_OURS -eq 1 && $FAILED_OURS -ne 0 ]]; then
    say "FAILED against this broker (see ${MATRIX_OUT#"$REPO"/})"
    exit 1
fi
if [[ $WANT_OURS -eq 0 && $FAILED_REF -ne 0 ]]; then
    say "FAILED against Apache Kafka: the scenarios themselves are wrong or the reference is broken"
    exit 1
fi
say "all checks passed"
